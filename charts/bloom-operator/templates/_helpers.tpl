{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "bloom-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "bloom-operator.fullname" -}}
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

{{- define "bloom-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bloom-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bloom-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bloom-operator.labels" -}}
helm.sh/chart: {{ include "bloom-operator.chart" . }}
{{ include "bloom-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bloom-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bloom-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "bloom-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespace the operator reconciles: watchNamespace, else the release
namespace with rbac.scope=namespace (its Role grants nothing elsewhere), else
"" (all namespaces).
*/}}
{{- define "bloom-operator.watchNamespace" -}}
{{- if .Values.watchNamespace }}
{{- .Values.watchNamespace }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
One section of files/rbac-rules.yaml (the single list of the operator's
permissions, shared with the Pulumi component) as a YAML list.
Usage: include "bloom-operator.rbacRules" (list . "watched" "clusterScoped")
*/}}
{{- define "bloom-operator.rbacRules" -}}
{{- $root := first . }}
{{- $all := $root.Files.Get "files/rbac-rules.yaml" | fromYaml }}
{{- if or (not $all) (hasKey $all "Error") }}
{{- fail "files/rbac-rules.yaml is missing or not valid YAML" }}
{{- end }}
{{- $rules := list }}
{{- range $section := rest . }}
{{- if not (hasKey $all $section) }}
{{- fail (printf "files/rbac-rules.yaml has no section %q" $section) }}
{{- end }}
{{- $rules = concat $rules (get $all $section) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}
