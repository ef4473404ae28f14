"""SDXLPortraitPipeline: SDXL + IP-Adapter FaceID SDXL, N prompts with one face and one seed.

The same guarantees and call as :class:`~pipelines.models.sd15_faceid.PortraitPipeline` (which this
subclasses): diffusers' ``StableDiffusionXLPipeline`` with ``ip-adapter-faceid_sdxl.bin`` loaded
through ``load_ip_adapter(..., image_encoder_folder=None)`` and the ArcFace embedding passed as
``ip_adapter_image_embeds``. What differs is SDXL's: two text encoders (both read 77 tokens; the
second also gives the pooled embedding SDXL conditions on) and a VAE that overflows in float16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from pipelines.models.sd15_faceid import PortraitPipeline

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL import Image


class SDXLPortraitPipeline(PortraitPipeline):
    """A ``StableDiffusionXLPipeline`` with IP-Adapter FaceID SDXL, shared across requests."""

    family_id: ClassVar[str] = "sdxl-faceid"

    @classmethod
    def _load_base(cls, base_model: str, dtype: torch.dtype, **hub: Any) -> DiffusionPipeline:
        from diffusers import StableDiffusionXLPipeline

        # no invisible watermark: it applies only to decoded outputs, and we decode ourselves
        return StableDiffusionXLPipeline.from_pretrained(
            base_model, dtype=dtype, add_watermarker=False, **hub
        )

    def _encode(
        self, prompts: list[str], negatives: list[str], do_cfg: bool
    ) -> dict[str, torch.Tensor]:
        """Both encoders' hidden states (N, 77, 768+1280) and the second one's pooled output."""
        prompt_embeds, negative_embeds, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=prompts,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_cfg,
            negative_prompt=negatives,  # a list, so "" is encoded, never zeroed
        )
        text = {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled}
        if do_cfg:
            text["negative_prompt_embeds"] = negative_embeds
            text["negative_pooled_prompt_embeds"] = negative_pooled
        return text

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        # SDXL's VAE overflows in float16 (force_upcast): decode in float32, as diffusers does
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        if upcast:
            vae.to(dtype=torch.float32)
        latents = latents.to(vae.dtype)
        mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
        if mean is not None and std is not None:
            shape = (1, len(mean), 1, 1)
            mean_t = torch.tensor(mean).view(shape).to(latents)
            std_t = torch.tensor(std).view(shape).to(latents)
            latents = latents * std_t / vae.config.scaling_factor + mean_t
        else:
            latents = latents / vae.config.scaling_factor
        pixels = vae.decode(latents, return_dict=False)[0]  # (b, 3, H, W)
        if upcast:
            vae.to(dtype=torch.float16)
        return self.pipe.image_processor.postprocess(
            pixels, output_type="pil", do_denormalize=[True] * len(pixels)
        )
