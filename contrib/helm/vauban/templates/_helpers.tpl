{{/* The release's base name. */}}
{{- define "vauban.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels of every object. */}}
{{- define "vauban.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The server's selector labels. */}}
{{- define "vauban.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "vauban.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "vauban.serviceAccount" -}}
{{ .Values.serviceAccount.name | default (include "vauban.fullname" .) }}
{{- end -}}

{{- define "vauban.buildServiceAccount" -}}
{{ .Values.serviceAccount.buildName | default (printf "%s-build" (include "vauban.fullname" .)) }}
{{- end -}}

{{- define "vauban.buildNamespace" -}}
{{ .Values.builds.namespace | default .Release.Namespace }}
{{- end -}}

{{- define "vauban.tokenSecret" -}}
{{- if .Values.token.create -}}
{{ include "vauban.fullname" . }}-token
{{- else -}}
{{ .Values.token.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "vauban.registrySecret" -}}
{{- if .Values.registryAuth.create -}}
{{ include "vauban.fullname" . }}-registry
{{- else -}}
{{ .Values.registryAuth.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "vauban.configMap" -}}
{{- if .Values.config.configYml -}}
{{ include "vauban.fullname" . }}-config
{{- else -}}
{{ .Values.config.existingConfigMap }}
{{- end -}}
{{- end -}}

{{/* A map as k=v,k2=v2 (VAUBAN_KUBE_NODE_SELECTOR). */}}
{{- define "vauban.pairs" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
