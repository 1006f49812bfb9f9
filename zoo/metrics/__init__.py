"""Metrics for generated and restored images: MNIST classifier scores, FID, PSNR/SSIM."""
