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

{{/* The database password is never generated here: a Secret from outside the chart, or no render. */}}
{{- define "alphafactory.postgresSecretName" -}}
{{- required "mlflow.postgresql.existingSecret is required with the bundled PostgreSQL: name a Secret (key \"password\") created outside the chart, e.g. by External Secrets or Sealed Secrets" .Values.mlflow.postgresql.existingSecret -}}
{{- end -}}

{{- define "alphafactory.mlflowAuthSecretName" -}}
{{- required "mlflow.auth.existingSecret is required when mlflow.enabled: name a Secret with keys \"admin-password\", \"flask-secret-key\" and \"credentials\" created outside the chart" .Values.mlflow.auth.existingSecret -}}
{{- end -}}

{{/* MLflow and PostgreSQL get their own service accounts: no RBAC, no pipeline GSA. */}}
{{- define "alphafactory.mlflowServiceAccountName" -}}
{{- include "alphafactory.mlflowName" . -}}
{{- end -}}

{{- define "alphafactory.postgresServiceAccountName" -}}
{{- include "alphafactory.postgresName" . -}}
{{- end -}}

{{/* In-cluster MLflow URL, or "" when the tracking server is not deployed. */}}
{{- define "alphafactory.mlflowUrl" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "alphafactory.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- end -}}
{{- end -}}

{{/* Host headers MLflow accepts (its DNS-rebinding guard): the Service's in-cluster names. */}}
{{- define "alphafactory.mlflowAllowedHosts" -}}
{{- $svc := include "alphafactory.mlflowName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $port := int .Values.mlflow.port -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $hosts := list "localhost:*" "127.0.0.1:*" -}}
{{- range $names }}{{ $hosts = append $hosts . }}{{ $hosts = append $hosts (printf "%s:%d" . $port) }}{{ end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Egress to kube DNS, shared by every policy. */}}
{{- define "alphafactory.egressDns" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{/* Egress to Google APIs (Private Google Access VIPs only) and the GKE metadata server. */}}
{{- define "alphafactory.egressGoogle" -}}
{{- with .Values.networkPolicy.googleApiCidrs }}
- to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {protocol: TCP, port: 443}
{{- end }}
{{- if .Values.networkPolicy.metadataServer }}
- to:
    - ipBlock: {cidr: 169.254.169.254/32}
  ports:
    - {protocol: TCP, port: 80}
- to:
    - ipBlock: {cidr: 169.254.169.252/32}
  ports:
    - {protocol: TCP, port: 988}
{{- end }}
{{- end -}}

{{/* Egress to database endpoints; argument: a list of {cidr, port}. */}}
{{- define "alphafactory.egressDatabases" -}}
{{- range . }}
- to:
    - ipBlock: {cidr: {{ .cidr }}}
  ports:
    - {protocol: TCP, port: {{ .port }}}
{{- end }}
{{- end -}}
