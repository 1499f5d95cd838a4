# RetinaNet R-50-FPN, 1x COCO schedule, with LiftPool (LiftDownPool, poolswap) at the ResNet stem's max-pool.
# LiftPool's predictor/updater convolutions are new parameters (zero-initialised last layer: it starts as the
# Haar low band); they train with the detector's loss (LiftPool's reconstruction regularisers are not added).
_base_ = "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"

model = dict(
    backbone=dict(
        _delete_=True,
        type="poolswap.PoolSwap",
        backbone={{_base_.model.backbone}},
        method="liftpool",
        freeze_with_stages=False,  # the stem's convolutions stay frozen as in the stock recipe; LiftPool trains
    )
)
custom_hooks = [dict(type="poolswap.PoolSwapHook")]
