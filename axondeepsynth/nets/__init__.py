"""SynDiff networks: NCSN++ diffusive generator, ResNet generator, discriminators."""
