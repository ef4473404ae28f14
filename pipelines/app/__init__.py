"""The wiring, the top layer of pipelines/: engines (which engine renders, and the engine
registry), the comparison service, staff access, and bootstrap (Services for the UI, the API
and the command-line entry points). Feature packages never import it."""
