"""Integrations with the systems around Assay (Alertmanager, webhooks, Prometheus, Grafana)."""
