"""The frame model and its arithmetic.

config      DiTConfig and the named sizes (xl_2, small, tiny); no torch needed
dit         WorldFMDiT, CameraInputs, position and timestep embeddings
prope       PRoPE camera encoding inside attention
plucker     Plücker ray features
checkpoint  official .pth loading (strict, weights_only) and our safetensors format
schedule, sampler, codec   noise schedule, samplers, VAE / pixel codecs
"""
