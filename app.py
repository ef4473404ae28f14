"""Become Lab: compare prompt-augmentation methods for AI portraits, side by side."""

import logging
import os
import threading

if os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}:
    import spaces  # noqa: F401  before anything touches CUDA: ZeroGPU patches torch at import

from demo import CSS, THEME, build_demo
from demo.serving import queue_demo
from demo.temp_cache import claim_temp_dir
from pipelines.app.bootstrap import build_at_start, build_services
from pipelines.core.settings import Settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

settings = Settings.from_env()
claim_temp_dir(settings.data_dir)  # before build_demo; uploads never outlive the app
services = build_services(settings)  # cheap: models load on first use or in warm-up
# ZeroGPU: every model is built now, at import, never inside a GPU call (whose state dies)
built_at_start = build_at_start(services)
demo = build_demo(services)

if __name__ == "__main__":
    services.start_sync()  # restore + sync ratings to a HF dataset, when configured
    if not built_at_start:
        threading.Thread(target=services.warmup, daemon=True).start()
    # one line per kind of request (demo/serving.py): a flood of reads never refuses a vote
    queue_demo(demo, settings).launch(
        theme=THEME, css=CSS, mcp_server=settings.mcp_server
    )  # + GRADIO_SERVER_* env
