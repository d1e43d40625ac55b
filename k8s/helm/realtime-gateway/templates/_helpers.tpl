{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "realtime-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "realtime-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "realtime-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "realtime-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "realtime-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "realtime-gateway.labels" -}}
helm.sh/chart: {{ include "realtime-gateway.chart" . }}
{{ include "realtime-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: realtime-gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "realtime-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "realtime-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "realtime-gateway.metricsServiceName" -}}
{{- printf "%s-metrics" (include "realtime-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "realtime-gateway.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* An environment value as a string: numbers without exponent notation, booleans as true/false. */}}
{{- define "realtime-gateway.envValue" -}}
{{- if kindIs "string" . }}{{ . }}
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if kindIs "invalid" . }}
{{- else }}{{ . | int64 | toString }}
{{- end }}
{{- end }}

{{/* TRUST_PROXY: the configured value, else one hop (the ingress controller) when the Ingress is on. */}}
{{- define "realtime-gateway.trustProxy" -}}
{{- $value := include "realtime-gateway.envValue" .Values.config.TRUST_PROXY }}
{{- if ne $value "" }}{{ $value }}
{{- else if .Values.ingress.enabled }}1
{{- else }}0
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds must cover the preStop sleep, the drain (SHUTDOWN_GRACE_MS) and the
5 s the gateway waits past it before forcing its own exit; 5 s more of margin by default.
*/}}
{{- define "realtime-gateway.minimumGraceSeconds" -}}
{{- $drain := div (add .Values.shutdownGraceMs 999) 1000 }}
{{- add .Values.lifecycle.preStopSleepSeconds $drain 5 }}
{{- end }}

{{- define "realtime-gateway.terminationGracePeriodSeconds" -}}
{{- $minimum := include "realtime-gateway.minimumGraceSeconds" . | int }}
{{- $configured := .Values.lifecycle.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $configured }}
{{- add $minimum 5 }}
{{- else if lt (int $configured) $minimum }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds=%d is too short: preStopSleepSeconds + shutdownGraceMs/1000 + 5 needs at least %d" (int $configured) $minimum) }}
{{- else }}
{{- int $configured }}
{{- end }}
{{- end }}

{{/* Whether a monitoring.coreos.com/v1 object is rendered: true, false, or auto (the API exists). */}}
{{- define "realtime-gateway.monitoringEnabled" -}}
{{- $setting := toString .setting }}
{{- $apis := .root.Capabilities.APIVersions }}
{{- $served := or ($apis.Has "monitoring.coreos.com/v1") ($apis.Has (printf "monitoring.coreos.com/v1/%s" .kind)) }}
{{- if or (eq $setting "true") (and (eq $setting "auto") $served) }}true{{ end }}
{{- end }}
