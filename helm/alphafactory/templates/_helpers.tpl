{{/* Full name: release name, plus chart name unless the release already contains it. */}}
{{- define "alphafactory.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alphafactory.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "alphafactory.labels" -}}
{{ include "alphafactory.selectorLabels" . }}
app.kubernetes.io/part-of: alphafactory
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
alphafactory.io/environment: {{ .Values.environment }}
{{- end -}}

{{- define "alphafactory.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "alphafactory.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository@sha256:... — images are only ever referenced by digest. */}}
{{- define "alphafactory.imageRef" -}}
{{- printf "%s@%s" .repository (required "image digest is required" .digest) -}}
{{- end -}}

{{/* Pod-level hardening shared by every pod of the chart. Argument: uid. */}}
{{- define "alphafactory.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level hardening shared by every container of the chart. Argument: uid. */}}
{{- define "alphafactory.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "alphafactory.configMapName" -}}
{{- printf "%s-env" (include "alphafactory.fullname" .) -}}
{{- end -}}

{{- define "alphafactory.mlflowName" -}}
{{- printf "%s-mlflow" (include "alphafactory.fullname" .) -}}
{{- end -}}

{{- define "alphafactory.postgresName" -}}
{{- printf "%s-postgresql" (include "alphafactory.fullname" .) -}}
{{- end -}}

{{- define "alphafactory.postgresSecretName" -}}
{{- default (include "alphafactory.postgresName" .) .Values.mlflow.postgresql.existingSecret -}}
{{- end -}}

{{/* In-cluster MLflow URL, or "" when the tracking server is not deployed. */}}
{{- define "alphafactory.mlflowUrl" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "alphafactory.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- end -}}
{{- end -}}
