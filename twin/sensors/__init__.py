"""Base-station sensors (camera, LiDAR, FMCW radar) rendered from the posed twin scene, and UE GPS."""
