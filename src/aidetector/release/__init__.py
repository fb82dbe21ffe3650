"""The release loop: registry events become deployments, alerts become retraining.

MLflow's model-registry webhook (`model_version_alias.created`) reaches a small receiver
(`aidetector webhook serve`) that checks MLflow's HMAC signature and, when the `champion`
alias moved, sends GitHub a `repository_dispatch` event that deploy.yml listens for. The same
receiver turns a firing Alertmanager alert into the retrain event of retrain.yml. Nothing here
imports torch, MLflow or BentoML at module level: the receiver's image has none of them.
"""
