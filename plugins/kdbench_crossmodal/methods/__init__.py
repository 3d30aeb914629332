"""The cross-modal distillation methods: bev-feature, heatmap-kd and bev-relation."""
