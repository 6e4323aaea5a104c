"""EEG denoising metrics per window, as EEGdenoiseNet (Zhang et al., J Neural Eng 2021) defines them.

Every window is first divided by the standard deviation of its noisy input (EEGdenoiseNet normalises
both signals by the noisy segment's std), which leaves the ratios below unchanged and puts the loss of
windows from different recordings on one scale. Over each window's N channels × T samples:
- RRMSE_t = RMS(pred − clean) / RMS(clean);
- RRMSE_s = RMS(PSD(pred) − PSD(clean)) / RMS(PSD(clean)), PSD a Hann-windowed periodogram per channel;
- CC = Pearson correlation of pred and clean per channel, averaged over the channels;
- SNR (dB) = 10·log10(RMS(clean) / RMS(pred − clean)), and its gain over the input's
  10·log10(RMS(clean) / RMS(noisy − clean)) (EEGdenoiseNet's SNR: 10·log10 of an amplitude ratio).

Shapes: B windows, N channels, T samples, F frequencies.
"""

from __future__ import annotations

import torch

EPS = 1e-12


def normalised(noisy: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`(noisy, *others)` divided by each window's noisy std over channels and samples ([B, N, T] each)."""
    scale = noisy.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)  # [B, 1, 1]
    return tuple(t / scale for t in (noisy, *others))


def _rms(x: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [B]
    return x.flatten(1).pow(2).mean(dim=1).sqrt()


def psd(x: torch.Tensor) -> torch.Tensor:
    """Hann-windowed periodogram per channel: [B, N, T] -> [B, N, F]."""
    window = torch.hann_window(x.shape[-1], dtype=x.dtype, device=x.device)
    return torch.fft.rfft((x - x.mean(dim=-1, keepdim=True)) * window).abs().pow(2)


def rrmse_t(pred: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:  # [B]
    return _rms(pred - clean) / _rms(clean).clamp_min(EPS)


def rrmse_s(pred: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:  # [B]
    p, c = psd(pred), psd(clean)
    return _rms(p - c) / _rms(c).clamp_min(EPS)


def cc(pred: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:  # [B]
    p = pred - pred.mean(dim=-1, keepdim=True)
    c = clean - clean.mean(dim=-1, keepdim=True)
    r = (p * c).sum(-1) / (p.norm(dim=-1) * c.norm(dim=-1)).clamp_min(EPS)  # [B, N]
    return r.mean(dim=-1)


def snr_db(pred: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:  # [B]
    return 10.0 * torch.log10(_rms(clean).clamp_min(EPS) / _rms(pred - clean).clamp_min(EPS))


def window_metrics(noisy: torch.Tensor, clean: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of the module docstring per window ([B] each), on the normalised windows."""
    noisy, clean, pred = normalised(noisy.double(), clean.double(), pred.double())
    out = snr_db(pred, clean)
    return {
        "rrmse_t": rrmse_t(pred, clean),
        "rrmse_s": rrmse_s(pred, clean),
        "cc": cc(pred, clean),
        "snr_db": out,
        "snr_gain_db": out - snr_db(noisy, clean),
        "mse": (pred - clean).flatten(1).pow(2).mean(dim=1),
    }


def band_power(x: torch.Tensor, sfreq: float, band: tuple[float, float]) -> torch.Tensor:
    """Mean periodogram power in [lo, hi) Hz per window: [B, N, T] -> [B]."""
    freqs = torch.fft.rfftfreq(x.shape[-1], 1.0 / sfreq)
    keep = (freqs >= band[0]) & (freqs < band[1])
    return psd(x)[..., keep].mean(dim=(1, 2))
