"""Become Lab: compare prompt-augmentation methods for AI portraits, side by side."""

import logging
import threading

from demo import CSS, THEME, build_demo
from demo.temp_cache import claim_temp_dir
from pipelines.app.bootstrap import build_services
from pipelines.core.settings import Settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

settings = Settings.from_env()
claim_temp_dir(settings.data_dir)  # before build_demo; uploads never outlive the app
services = build_services(settings)  # cheap: models load on first use or in warm-up
demo = build_demo(services)

if __name__ == "__main__":
    services.start_sync()  # restore + sync ratings to a HF dataset, when configured
    threading.Thread(target=services.warmup, daemon=True).start()
    demo.queue(
        default_concurrency_limit=settings.queue_concurrency, max_size=settings.max_queue
    ).launch(theme=THEME, css=CSS)  # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured
