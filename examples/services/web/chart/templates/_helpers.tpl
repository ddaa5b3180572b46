{{- define "web.labels" -}}
app: web
app.kubernetes.io/name: {{ .Chart.Name }}
{{- end -}}
