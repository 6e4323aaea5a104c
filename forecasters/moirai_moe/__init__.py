from forecasters.moirai_moe.config import MoiraiMoEConfig
from forecasters.moirai_moe.model import MoiraiMoE

__all__ = ["MoiraiMoE", "MoiraiMoEConfig"]
