"""Named, fixed model samples, for measuring the harness (``python -m harness bench-sweep``):
written out, so the same models are measured on every release and every run.

``random48``: 48 numeric models (at most 100M parameters, the default --max-params)
outside the smoke set, drawn from timm 1.0.31's registry with ``random.Random(20261201)``
shuffling the sorted names, keeping the first 48 that build on the meta device under the
limit."""
from __future__ import annotations

SAMPLES: dict[str, tuple[str, ...]] = {
    "random48": (
        "vit_wee_patch16_reg1_gap_256", "vit_dpwee_patch16_reg1_gap_256", "ghostnetv2_160",
        "vit_relpos_small_patch16_224",
        "pvt_v2_b5", "nest_small", "hgnetv2_b6", "swinv2_tiny_window8_256",
        "levit_conv_384_s8", "resnet200d", "nf_regnet_b0", "maxvit_tiny_rw_256",
        "haloregnetz_b", "coat_tiny", "tf_efficientnet_cc_b0_8e", "regnetx_080",
        "regnety_064", "pit_xs_distilled_224", "crossvit_15_240", "cait_xxs36_224",
        "convnext_nano_ols", "ecaresnet50d", "test_coatnet", "levit_conv_256d",
        "volo_d2_224", "repvgg_b1g4", "eva02_base_patch14_224", "vit_small_patch32_384",
        "efficientnet_lite0", "tresnet_m", "mobileone_s3", "volo_d2_384",
        "swiftformer_xs", "cs3edgenet_x", "ese_vovnet19b_slim_dw", "pvt_v2_b1",
        "ese_vovnet39b", "convformer_m36", "resnetv2_50d_gn", "tf_efficientnet_em",
        "resnet26d", "fastvit_mci2", "swinv2_tiny_window16_256", "cspnext_x",
        "sehalonet33ts", "resnetv2_50d", "gcresnext26ts", "tf_efficientnetv2_b2",
    ),
}
