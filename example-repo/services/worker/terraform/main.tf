# Per-cell infrastructure for the worker service (offline: built-in resources only).
variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
variable "service_version" { type = string }
variable "instance_class" { type = string }
variable "replicas" { type = number }

resource "terraform_data" "schedule_bucket" {
  input = "schedules-${var.cell}"
}

output "schedule_bucket" {
  value = terraform_data.schedule_bucket.output
}
