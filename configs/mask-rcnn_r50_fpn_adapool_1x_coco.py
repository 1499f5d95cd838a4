# Mask R-CNN R-50-FPN, 1x COCO schedule, with adaPool (poolswap) at the ResNet stem's max-pool.
# Everything else is mmdet's stock config; train with `mim train mmdet <this file>` or mmdet's tools/train.py.
_base_ = "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"

model = dict(
    backbone=dict(
        _delete_=True,
        type="poolswap.PoolSwap",  # builds the stock backbone, converts it, returns it (keys stay backbone.*)
        backbone={{_base_.model.backbone}},
        method="adapool",
        beta_mode="channel",  # one β per channel: size-free under multi-scale, padded batches
        # the stock recipe freezes the stem (frozen_stages=1); keep its convolutions frozen but let the new β
        # train. With True (the builder's default) the stem's β is frozen with it and stays at beta_init.
        freeze_with_stages=False,
    )
)
custom_hooks = [dict(type="poolswap.PoolSwapHook")]  # plan in checkpoint meta; refuses mismatched checkpoints
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"beta_mask": dict(decay_mult=0.0)}))  # no decay on β
