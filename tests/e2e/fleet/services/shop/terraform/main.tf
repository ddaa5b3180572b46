variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
variable "service_version" { type = string }
variable "replicas" { type = number }

resource "terraform_data" "queue" {
  input = "orders-${var.cell}"
}

output "queue" {
  value = terraform_data.queue.output
}
