# Per-cell infrastructure for the api service. Built-in resources only, so it
# plans and applies offline; a real fleet would create queues and buckets here.
terraform {
  required_version = ">= 1.4"
}

variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
variable "service_version" { type = string }
variable "instance_class" { type = string }
variable "replicas" { type = number }

resource "terraform_data" "orders_queue" {
  input = {
    name   = "orders-${var.cell}"
    region = var.region
  }
}

resource "terraform_data" "cell_settings" {
  input = {
    cell           = var.cell
    zone           = var.zone
    instance_class = var.instance_class
    replicas       = var.replicas
  }
}

output "queue_name" {
  value = terraform_data.orders_queue.output.name
}

output "instance_class" {
  value = terraform_data.cell_settings.output.instance_class
}
