terraform {
  required_providers {
    local = { source = "hashicorp/local", version = "1.4.0" }
  }
}

variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
variable "service_version" { type = string }
variable "replicas" { type = number }
variable "out_dir" { type = string }

resource "terraform_data" "queue" {
  input = "orders-${var.cell}"
}

# A real object outside Terraform's state that a person can change by hand (drift).
resource "local_file" "queue_conf" {
  filename = "${path.module}/${var.cell}.conf"  # its workspace: all the sandbox lets it write
  content  = "queue=orders-${var.cell}\n"
}

output "queue" {
  value = terraform_data.queue.output
}
