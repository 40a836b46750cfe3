{{/* Names, labels, the image reference, and the pod parts every kbsearch workload shares. */}}

{{- define "kbsearch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kbsearch.fullname" -}}
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

{{- define "kbsearch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kbsearch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kbsearch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kbsearch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kbsearch
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "web") */}}
{{- define "kbsearch.componentLabels" -}}
{{ include "kbsearch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kbsearch.componentSelector" -}}
{{ include "kbsearch.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kbsearch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kbsearch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag[@digest]: (dict "root" $ "image" .Values.image) */}}
{{- define "kbsearch.imageRef" -}}
{{- $root := .root }}
{{- $image := .image }}
{{- $registry := coalesce $root.Values.global.imageRegistry $image.registry $root.Values.image.registry }}
{{- $repository := default $root.Values.image.repository $image.repository }}
{{- $tag := toString (default (default $root.Chart.AppVersion $root.Values.image.tag) $image.tag) }}
{{- $digest := default $root.Values.image.digest $image.digest }}
{{- if $image.repository }}{{ $digest = $image.digest }}{{ end }}
{{- if eq $tag "latest" }}{{ fail "image tags must be pinned: \"latest\" is refused (set a version tag or a digest)" }}{{ end }}
{{- $ref := printf "%s:%s" $repository $tag }}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end }}
{{- if $digest }}{{ $ref = printf "%s@%s" $ref $digest }}{{ end }}
{{- $ref }}
{{- end }}

{{- define "kbsearch.image" -}}
{{ include "kbsearch.imageRef" (dict "root" . "image" .Values.image) }}
{{- end }}

{{- define "kbsearch.webServiceName" -}}
{{- printf "%s-web" (include "kbsearch.fullname" .) }}
{{- end }}

{{/* The non-secret environment: the ConfigMap's data, and the migration Job's env (hooks run
before the ConfigMap exists). */}}
{{- define "kbsearch.configData" -}}
{{- $web := include "kbsearch.webServiceName" . }}
{{- $hosts := concat (list $web (printf "%s.%s.svc" $web .Release.Namespace) (printf "%s.%s.svc.cluster.local" $web .Release.Namespace)) .Values.config.allowedHosts .Values.ingress.hosts | uniq }}
{{- $origins := list }}
{{- range .Values.ingress.hosts }}{{ $origins = append $origins (printf "https://%s" .) }}{{ end }}
{{- $origins = concat $origins .Values.config.csrfTrustedOrigins | uniq }}
{{- $weaviateUrl := .Values.index.weaviate.url }}
{{- $grpcUrl := .Values.index.weaviate.grpcUrl }}
{{- if .Values.weaviate.enabled }}
{{- $weaviateUrl = default (printf "http://weaviate.%s.svc:80" .Release.Namespace) $weaviateUrl }}
{{- $grpcUrl = default (printf "weaviate-grpc.%s.svc:50051" .Release.Namespace) $grpcUrl }}
{{- else if not $weaviateUrl }}
{{- fail "index.weaviate.url is required when the bundled Weaviate is off (weaviate.enabled=false)" }}
{{- end }}
KBSEARCH_ALLOWED_HOSTS: {{ join "," $hosts | quote }}
KBSEARCH_CSRF_TRUSTED_ORIGINS: {{ join "," $origins | quote }}
KBSEARCH_PROXY_SSL_HEADER: {{ .Values.config.proxySslHeader | quote }}
KBSEARCH_SSL_REDIRECT: {{ ternary "1" "0" .Values.config.sslRedirect | quote }}
KBSEARCH_HSTS_SECONDS: {{ .Values.config.hstsSeconds | quote }}
KBSEARCH_PRINCIPAL_RESOLVER: {{ .Values.config.principalResolver | quote }}
KBSEARCH_LDAP_SIGN_IN: {{ ternary "1" "0" .Values.config.ldapSignIn | quote }}
KBSEARCH_TRUSTED_PROXY_HEADER: {{ .Values.config.trustedProxyHeader | quote }}
KBSEARCH_TRUSTED_PROXY_ADDRESSES: {{ join "," .Values.config.trustedProxyAddresses | quote }}
KBSEARCH_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
KBSEARCH_TIME_ZONE: {{ .Values.config.timeZone | quote }}
KBSEARCH_AUDIT_RETENTION_DAYS: {{ .Values.config.auditRetentionDays | quote }}
KBSEARCH_INDEX_BACKEND: "kbsearch.index.weaviate.WeaviateIndexBackend"
KBSEARCH_WEAVIATE_URL: {{ $weaviateUrl | quote }}
KBSEARCH_WEAVIATE_GRPC_URL: {{ $grpcUrl | quote }}
KBSEARCH_WEAVIATE_COLLECTION: {{ .Values.index.weaviate.collection | quote }}
KBSEARCH_EMBEDDING_MODEL: {{ .Values.model.name | quote }}
KBSEARCH_EMBED_PRECISION: {{ .Values.model.precision | quote }}
KBSEARCH_MODEL_CACHE_DIR: {{ .Values.model.mountPath | quote }}
KBSEARCH_VAR_DIR: {{ .Values.varDir.path | quote }}
KBSEARCH_HEARTBEAT_FILE: "/tmp/kbsearch-heartbeat"
{{- range $name, $value := .Values.config.extra }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Secret variables, each a secretKeyRef into an existing Secret; never a value. */}}
{{- define "kbsearch.secretEnv" -}}
{{- $secret := .Values.secrets.existingSecret }}
{{- $keys := .Values.secrets.keys }}
{{- $refs := list
  (list "KBSEARCH_SECRET_KEY" $keys.secretKey false)
  (list "DATABASE_URL" $keys.databaseUrl false)
  (list "KBSEARCH_BROKER_URL" $keys.brokerUrl false)
  (list "KBSEARCH_CACHE_URL" $keys.cacheUrl true)
  (list "KBSEARCH_CREDENTIALS_KEY" $keys.credentialsKey true)
  (list "KBSEARCH_WEAVIATE_API_KEY" $keys.weaviateApiKey true)
  (list "KBSEARCH_METRICS_TOKEN" $keys.metricsToken true) }}
{{- range $refs }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index . 1 }}
      {{- if index . 2 }}
      optional: true
      {{- end }}
{{- end }}
{{- range .Values.secrets.extraEnv }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ default $secret .secretName }}
      key: {{ .key }}
{{- end }}
{{- end }}

{{- define "kbsearch.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "kbsearch.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Volumes of a kbsearch pod: /tmp, var and (when the pod needs it) the models volume. */}}
{{- define "kbsearch.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmp.sizeLimit }}
- name: var
  emptyDir:
    sizeLimit: {{ .root.Values.varDir.sizeLimit }}
{{- if .models }}
- name: models
  {{- if .root.Values.model.volume.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-models" (include "kbsearch.fullname" .root)) .root.Values.model.volume.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}
{{- end }}

{{/* Mounts: (dict "root" $ "models" "readOnly"|"readWrite"|"") */}}
{{- define "kbsearch.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: var
  mountPath: {{ .root.Values.varDir.path }}
{{- if .models }}
- name: models
  mountPath: {{ .root.Values.model.mountPath }}
  readOnly: {{ eq .models "readOnly" }}
{{- end }}
{{- end }}

{{/* The init container that builds or checks the configured model on the shared volume. */}}
{{- define "kbsearch.modelPrepare" -}}
{{- if .Values.model.prepare }}
- name: model-prepare
  image: {{ include "kbsearch.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["python", "manage.py", "build_model"]
  envFrom:
    - configMapRef:
        name: {{ include "kbsearch.fullname" . }}
  securityContext:
    {{- include "kbsearch.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 500m, memory: 1Gi}
    limits: {memory: 2Gi}
  volumeMounts:
    {{- include "kbsearch.volumeMounts" (dict "root" . "models" "readWrite") | nindent 4 }}
{{- end }}
{{- end }}

{{/* Pod-level fields shared by every kbsearch pod. */}}
{{- define "kbsearch.podCommon" -}}
serviceAccountName: {{ include "kbsearch.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- include "kbsearch.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Scheduling fields of one workload's values. */}}
{{- define "kbsearch.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
