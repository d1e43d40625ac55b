/** One schema per client event: nothing reaches a handler unvalidated. */
import { z } from "zod";
import { TICKET_ID_PATTERN } from "../protocol.js";

export const ticketIdSchema = z
  .string({ error: "ticketId must be a string" })
  .min(1, "ticketId must not be empty")
  .max(128, "ticketId must be at most 128 characters")
  .regex(TICKET_ID_PATTERN, "ticketId may hold only letters, digits and _ . : @ -");

export const subscribeSchema = z.object({
  ticketId: ticketIdSchema,
  sinceSeq: z.number().int("sinceSeq must be an integer").min(0, "sinceSeq must be >= 0").max(Number.MAX_SAFE_INTEGER).optional(),
});

export const unsubscribeSchema = z.object({ ticketId: ticketIdSchema });

export const typingSchema = z.object({ ticketId: ticketIdSchema, typing: z.boolean({ error: "typing must be a boolean" }) });

export const refreshSchema = z.object({ token: z.string().min(1, "token must not be empty").max(8192, "token too long") });

/** The first issue, as one line a client developer can act on. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid payload";
  if (issue.path.length === 0) return issue.code === "invalid_type" ? "payload must be an object" : issue.message;
  return issue.message.includes(String(issue.path[0])) ? issue.message : `${issue.path.join(".")}: ${issue.message}`;
}
