{{/* The name of every object: fullnameOverride, else the release name with
"-lock-arbiter" unless it already says so; 63 characters at most. */}}
{{- define "lock-arbiter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The component: "arbiter" for the Deployment, "once" for the CronJob, as in manifests/. */}}
{{- define "lock-arbiter.component" -}}
{{- if eq .Values.mode "deployment" -}}arbiter{{- else if eq .Values.mode "cronjob" -}}once{{- else -}}
{{- fail (printf "mode must be deployment or cronjob, not %q" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/* What selects the pods. */}}
{{- define "lock-arbiter.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "lock-arbiter.component" . }}
{{- end -}}

{{/* The labels of every object. */}}
{{- define "lock-arbiter.labels" -}}
{{ include "lock-arbiter.selectorLabels" . }}
app.kubernetes.io/part-of: lock-arbiter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lock-arbiter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lock-arbiter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the existing ServiceAccount to run as (serviceAccount.create is false)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces that get the Role: the release's (the arbiter reads its own
pod there for the cluster identity check) and every holder namespace. */}}
{{- define "lock-arbiter.roleNamespaces" -}}
{{- $all := list .Release.Namespace -}}
{{- range .Values.holderNamespaces -}}
{{- $all = append $all . -}}
{{- end -}}
{{- $all | uniq | toJson -}}
{{- end -}}

{{/* The pod spec both forms share: the arbiter running COMMAND (run or once). */}}
{{- define "lock-arbiter.podSpec" -}}
{{- $ctx := .ctx -}}
{{- with $ctx -}}
serviceAccountName: {{ include "lock-arbiter.serviceAccountName" . }}
# The arbiter reads its token from the standard mount (re-read every 60 s).
automountServiceAccountToken: true
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: lock-arbiter
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args: [{{ $.command | quote }}]
    envFrom:
      - configMapRef:
          name: {{ include "lock-arbiter.fullname" . }}
    env:
      # The databases, from the Secret: the URLs hold the passwords.
      - name: LOCK_ARBITER_DATABASE
        valueFrom:
          secretKeyRef:
            name: {{ required "databases.existingSecret: the Secret with the database URLs" .Values.databases.existingSecret }}
            key: {{ required "databases.key: the key of the database URLs in the Secret" .Values.databases.key }}
      # The cluster identity check: the API must show this very pod.
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: POD_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      - name: POD_UID
        valueFrom:
          fieldRef:
            fieldPath: metadata.uid
      - name: CONTAINER_NAME
        value: lock-arbiter
    {{- if eq $.command "run" }}
    ports:
      - name: metrics
        containerPort: 9479
        protocol: TCP
    # /healthz does not depend on the database or the API: a restart would
    # not fix either.
    livenessProbe:
      httpGet:
        path: /healthz
        port: metrics
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 2
      failureThreshold: 3
    # /readyz: every database connected and the cluster identity confirmed.
    readinessProbe:
      httpGet:
        path: /readyz
        port: metrics
      periodSeconds: 5
      timeoutSeconds: 2
      failureThreshold: 2
    {{- end }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
{{- end -}}
{{- end -}}
