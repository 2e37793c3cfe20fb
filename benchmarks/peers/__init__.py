"""Competitor servers ("peers") measured beside this service: MLServer, BentoML and LitServe on
the same artifact, each in a virtual environment of its own that the harness makes (they are not
dependencies of the project).

The harness side (venvs, bodies, launch, check, catalog) runs in the project's environment; the
app modules (bentoml_service, litserve_server) run only in their peer's own environment, copied
into a temporary directory, and import nothing of the project.
"""
