{{/* Chart name, truncated to 63 characters. */}}
{{- define "pos-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: the release name, or release-chart when they differ. */}}
{{- define "pos-relay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pos-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels; pass (dict "ctx" $ "component" "operator"). */}}
{{- define "pos-relay.labels" -}}
helm.sh/chart: {{ include "pos-relay.chart" .ctx }}
{{ include "pos-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: pos-relay
{{- end -}}

{{- define "pos-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pos-relay.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The one image (relay, discovery and operator). */}}
{{- define "pos-relay.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "pos-relay.relayImage" -}}
{{- if .Values.operator.relayImage.repository -}}
{{- printf "%s:%s" .Values.operator.relayImage.repository (default .Chart.AppVersion .Values.operator.relayImage.tag) -}}
{{- else -}}
{{- include "pos-relay.image" . -}}
{{- end -}}
{{- end -}}

{{- define "pos-relay.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "pos-relay.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret holding p2p-secret and redis-url. */}}
{{- define "pos-relay.discoverySecretName" -}}
{{- default (printf "%s-discovery" (include "pos-relay.fullname" .)) .Values.discovery.existingSecret -}}
{{- end -}}

{{/* Restricted pod security (non-root, RuntimeDefault seccomp). */}}
{{/* Secret holding the ticket signing keys (key ticket-keys.json). */}}
{{- define "pos-relay.ticketKeysSecretName" -}}
{{- default (printf "%s-ticket-keys" (include "pos-relay.fullname" .)) .Values.accounts.ticketKeys.existingSecret -}}
{{- end -}}

{{/* Secret holding the admin secret (key admin-secret). */}}
{{- define "pos-relay.adminSecretName" -}}
{{- default (printf "%s-admin" (include "pos-relay.fullname" .)) .Values.accounts.adminSecret.existingSecret -}}
{{- end -}}

{{/* "true" when the accounts hook has a Secret to create. */}}
{{- define "pos-relay.accountsHook" -}}
{{- if and .Values.accounts.enabled (or (not .Values.accounts.ticketKeys.existingSecret) (not .Values.accounts.adminSecret.existingSecret)) -}}true{{- end -}}
{{- end -}}
