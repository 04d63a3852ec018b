"""Clip-consistent augmentation and normalisation.

All random parameters are drawn once per clip (:meth:`ClipTransform.draw`) and applied to
every frame, so a clip stays temporally coherent; an optional optical-flow clip gets the same
spatial transform, with its x component negated by a horizontal flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ClipParams:
    flip: bool = False
    cx: int = 0  # crop offset (pixels) when ClipTransform.crop > 0
    cy: int = 0
    dx: int = 0  # translation in pixels (crop offset inside the padded frame)
    dy: int = 0
    erase: tuple[int, int, int, int] | None = None  # y0, x0, h, w
    erase_value: tuple[float, float, float] = (0.0, 0.0, 0.0)
    jitter: tuple[float, float, float, float] | None = None  # brightness, contrast, saturation factors; hue shift (of 180)
    gray: bool = False
    blur: float = 0.0  # Gaussian sigma in pixels (0: none)
    zoom: tuple[int, int] | None = None  # crop offset (x, y) in the frame enlarged by ClipTransform.zoom
    lowres: float = 1.0  # down-scaling factor before scaling back (1: none)


@dataclass
class ClipTransform:
    """Resize to (height, width), augment (training), normalise.

    Args:
        height, width: output size in pixels.
        train: draw random augmentations (False: resize + normalise only).
        flip_p: probability of a horizontal flip of the whole clip.
        pad: translation: the frame is zero-padded by ``pad`` pixels and a random crop of the
            original size taken (0 disables).
        erase_p: probability of random erasing (Zhong et al., AAAI 2020) of one rectangle, the
            same for every frame of the clip.
        mean, std: per-channel RGB normalisation (ImageNet by default).
        crop: output is (height - crop) x (width - crop): a random window fixed for the whole
            clip in training, the centre one at test (ASTPN, Xu et al. 2017, Sec. 4.1.1).
        color: ``rgb`` (normalised with mean/std) or ``yuv_std`` (YUV, every channel of every
            frame standardised to zero mean and unit variance, as in RNN-CNN / ASTPN).
        uint8_out: with ``color="rgb"``, :meth:`__call__` stops before normalising and returns
            the clip as uint8 (T, 3, H, W) (4x less to copy to a GPU); :meth:`finish` then
            normalises and erases on the device, giving the same floats as the host path.
        color_p, color_strength: probability of a colour jitter of the clip (brightness,
            contrast and saturation scaled by factors in [1 - s, 1 + s], hue shifted by up to
            s / 6 of the circle), for appearance variety beyond the synthetic renderer's.
        gray_p: probability of turning the clip greyscale. blur_p: probability of a Gaussian
            blur (sigma 0.3-1.5 pixels). All drawn once per clip, applied to the uint8 frames.
        zoom_p, zoom: probability of enlarging the clip's frames by ``zoom`` and cropping a random
            window of the original size (torchreid's ``Random2DTranslation``: 1.125, p = 0.5), so
            the person fills more of the frame, as tight detector or ground-truth boxes do.
        lowres_p, lowres: probability of a resolution loss: every frame is shrunk by a factor
            drawn in [lowres, 1) (area interpolation) and scaled back (bilinear), as a crop of a
            distant person in surveillance video is an enlarged small image (not from the five
            papers: a candidate measured for issue 24, docs/RESULTS.md; a crisper counterpart of blur).
    """

    height: int = 256
    width: int = 128
    train: bool = True
    flip_p: float = 0.5
    pad: int = 0
    erase_p: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop: int = 0
    color: str = "rgb"
    uint8_out: bool = False
    color_p: float = 0.0
    color_strength: float = 0.3
    gray_p: float = 0.0
    blur_p: float = 0.0
    zoom_p: float = 0.0
    zoom: float = 1.125
    lowres_p: float = 0.0
    lowres: float = 0.4

    @property
    def device_normalised(self) -> bool:
        """True when clips leave :meth:`__call__` as uint8 and :meth:`finish` normalises them."""
        return self.uint8_out and self.color == "rgb"

    def draw(self, rng: np.random.Generator | None) -> ClipParams:
        """Draw the clip's augmentation (identity when not training)."""
        if not self.train or rng is None:
            return ClipParams(cx=self.crop // 2, cy=self.crop // 2)
        p = ClipParams(flip=bool(rng.random() < self.flip_p))
        if self.crop > 0:
            p.cx, p.cy = (int(v) for v in rng.integers(0, self.crop + 1, 2))
        if self.pad > 0:
            p.dx, p.dy = (int(v) for v in rng.integers(-self.pad, self.pad + 1, 2))
        if self.erase_p > 0 and rng.random() < self.erase_p:
            area = self.height * self.width * rng.uniform(0.02, 0.3)
            ratio = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
            h = int(min(self.height, round(np.sqrt(area * ratio))))
            w = int(min(self.width, round(np.sqrt(area / ratio))))
            p.erase = (int(rng.integers(0, self.height - h + 1)), int(rng.integers(0, self.width - w + 1)), h, w)
        # drawn after the older parameters, so runs without these keep their random streams
        if self.color_p > 0 and rng.random() < self.color_p:
            s = self.color_strength
            p.jitter = tuple(float(v) for v in rng.uniform(1 - s, 1 + s, 3)) + (float(rng.uniform(-s, s) * 30),)
        if self.gray_p > 0 and rng.random() < self.gray_p:
            p.gray = True
        if self.blur_p > 0 and rng.random() < self.blur_p:
            p.blur = float(rng.uniform(0.3, 1.5))
        if self.zoom_p > 0 and rng.random() < self.zoom_p:
            zh, zw = self._zoomed_size()
            p.zoom = (int(rng.integers(0, zw - self.width + 1)), int(rng.integers(0, zh - self.height + 1)))
        if self.lowres_p > 0 and rng.random() < self.lowres_p:
            p.lowres = float(rng.uniform(self.lowres, 1.0))
        return p

    def _zoomed_size(self) -> tuple[int, int]:
        return max(self.height, int(round(self.height * self.zoom))), max(self.width, int(round(self.width * self.zoom)))

    def _zoom(self, x: np.ndarray, at: tuple[int, int], flow: bool = False) -> np.ndarray:
        """Enlarge (T, H, W, C) frames to the zoomed size and crop (H, W) at ``at`` = (x, y);
        flow vectors (``flow``) are scaled with the image."""
        zh, zw = self._zoomed_size()
        H, W = x.shape[1:3]
        big = np.stack([cv2.resize(f, (zw, zh), interpolation=cv2.INTER_LINEAR) for f in x])
        if flow:
            big = big * np.array([zw / W, zh / H], np.float32)
        return big[:, at[1]:at[1] + H, at[0]:at[0] + W]

    @staticmethod
    def _appearance(x: np.ndarray, params: ClipParams) -> np.ndarray:
        """Colour jitter, greyscale, blur and resolution loss of uint8 RGB frames (T, H, W, 3), the
        same for all."""
        if params.jitter is None and not params.gray and params.blur <= 0 and params.lowres >= 1.0:
            return x
        f = x.astype(np.float32)
        if params.jitter is not None:
            b, c, s, h = params.jitter
            f = f * b
            f = (f - f.mean((1, 2, 3), keepdims=True)) * c + f.mean((1, 2, 3), keepdims=True)
            grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
            f = (f - grey[..., None]) * s + grey[..., None]
            if h:
                hsv = np.stack([cv2.cvtColor(np.clip(fr, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV) for fr in f])
                hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(h))) % 180).astype(np.uint8)
                f = np.stack([cv2.cvtColor(fr, cv2.COLOR_HSV2RGB) for fr in hsv]).astype(np.float32)
        if params.gray:
            f = np.repeat((f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=-1)
        if params.blur > 0:
            f = np.stack([cv2.GaussianBlur(fr, (0, 0), params.blur) for fr in f])
        if params.lowres < 1.0:
            H, W = f.shape[1:3]
            h, w = max(1, int(round(H * params.lowres))), max(1, int(round(W * params.lowres)))
            f = np.stack([cv2.resize(cv2.resize(fr, (w, h), interpolation=cv2.INTER_AREA), (W, H),
                                     interpolation=cv2.INTER_LINEAR) for fr in f])
        return np.clip(np.round(f), 0, 255).astype(np.uint8)

    def resize(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape[0] != self.height or frame.shape[1] != self.width:
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return frame

    @staticmethod
    def _shift(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
        """Translate (T, H, W, C) by (dx, dy) pixels with zero fill."""
        if dx == 0 and dy == 0:
            return x
        out = np.zeros_like(x)
        H, W = x.shape[1:3]
        ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
        xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
        out[:, yd, xd] = x[:, ys, xs]
        return out

    def __call__(self, frames: np.ndarray, params: ClipParams, flow: np.ndarray | None = None):
        """Apply to a clip.

        Args:
            frames: uint8 RGB, shape (T, H, W, 3), already resized to (height, width).
            params: from :meth:`draw`.
            flow: optional float32 flow, shape (T, H, W, 2) in pixels (x, y), same size.

        Returns:
            ``clip`` float32 tensor (T, 3, H, W) normalised (uint8, not normalised nor erased, when
            :attr:`device_normalised`: see :meth:`finish`), and ``flow`` tensor (T, 2, H, W) or None.
        """
        x = self._appearance(frames, params)
        if params.zoom is not None:
            x = self._zoom(x, params.zoom)
        c = self.crop
        if c:
            x = x[:, params.cy:params.cy + x.shape[1] - c, params.cx:params.cx + x.shape[2] - c]
        if params.flip:
            x = x[:, :, ::-1]
        x = self._shift(x, params.dx, params.dy)
        if self.color == "yuv_std":
            yuv = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2YUV) for f in x]).astype(np.float32)
            m = yuv.mean((1, 2), keepdims=True)
            sd = yuv.std((1, 2), keepdims=True)
            clip = torch.from_numpy((yuv - m) / np.maximum(sd, 1e-6)).permute(0, 3, 1, 2).contiguous()
        elif self.device_normalised:
            clip = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()
        else:
            clip = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255.0)
            mean = torch.tensor(self.mean).view(1, 3, 1, 1)
            std = torch.tensor(self.std).view(1, 3, 1, 1)
            clip = (clip - mean) / std
        if params.erase is not None and not self.device_normalised:
            y0, x0, h, w = params.erase
            clip[:, :, y0:y0 + h, x0:x0 + w] = 0.0
        fl = None
        if flow is not None:
            f = flow
            if params.zoom is not None:
                f = self._zoom(f, params.zoom, flow=True)
            if c:
                f = f[:, params.cy:params.cy + f.shape[1] - c, params.cx:params.cx + f.shape[2] - c]
            if params.flip:
                f = f[:, :, ::-1].copy()
                f[..., 0] = -f[..., 0]
            f = self._shift(f, params.dx, params.dy)
            fl = torch.from_numpy(np.ascontiguousarray(f)).permute(0, 3, 1, 2).float()
        return clip, fl

    @staticmethod
    def erase_box(params: ClipParams) -> torch.Tensor:
        """The clip's erasing rectangle as int64 (4,) = (y0, x0, h, w), h = w = 0 for none: what a
        uint8 item carries so that :meth:`finish` can erase on the device."""
        return torch.tensor(params.erase if params.erase is not None else (0, 0, 0, 0), dtype=torch.int64)

    def finish(self, clip: torch.Tensor, erase: torch.Tensor | None = None) -> torch.Tensor:
        """Complete a batch on its device: a uint8 batch (..., 3, H, W) (clips (B, T, 3, H, W) or
        frames (N, 3, H, W)) is converted to float32, scaled to [0, 1], normalised with mean/std
        and, for clips, erased with the boxes ``erase`` (int64 (B, 4), from :meth:`erase_box`);
        a float batch is returned unchanged.

        The result equals the host path of :meth:`__call__` to float32 rounding (a test checks
        it). The erase boxes are applied with one broadcast mask, so no host synchronisation.
        """
        if clip.dtype != torch.uint8:
            return clip
        dev = clip.device
        mean = torch.tensor(self.mean, device=dev).view(3, 1, 1)
        std = torch.tensor(self.std, device=dev).view(3, 1, 1)
        x = (clip.float().div_(255.0) - mean) / std
        if erase is not None:
            e = erase.to(dev, non_blocking=True).view(-1, 4, 1)
            H, W = x.shape[-2:]
            ys = torch.arange(H, device=dev).view(1, 1, H)
            xs = torch.arange(W, device=dev).view(1, 1, W)
            iny = (ys >= e[:, 0:1]) & (ys < e[:, 0:1] + e[:, 2:3])  # (B, 1, H)
            inx = (xs >= e[:, 1:2]) & (xs < e[:, 1:2] + e[:, 3:4])  # (B, 1, W)
            mask = (iny.view(-1, 1, 1, H, 1) & inx.view(-1, 1, 1, 1, W))
            x = x.masked_fill(mask, 0.0)
        return x
