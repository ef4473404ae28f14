"""The generators: one module per model family (sd15_faceid, sdxl_faceid, flux2_klein), what
they share (base, runtime, safety), the family registry, and the diffusion renderer that runs
any of them."""
