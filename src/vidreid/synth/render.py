"""Procedural pedestrian renderer behind the synthetic benchmark (:mod:`vidreid.synth`).

An *identity* is a set of appearance attributes (body shape, clothing colours and pattern,
hair, hat, backpack, shoulder bag, shoes) and a gait (cadence, stride, arm swing, bounce). A
*camera* has a background, illumination gain, colour cast, preferred viewpoint, person scale,
blur and sensor noise. A *tracklet* is one identity walking in one camera for ``length`` frames,
with a viewpoint, a gait phase, detection-box jitter and occlusion episodes.

Frames are drawn with OpenCV primitives into a uint8 BGR canvas; everything random comes from
NumPy generators seeded by the caller, so a tracklet is a pure function of its seed.

The detailed renderer (``Preset.detail = 1``) draws the same people with more on them: an
identity's :class:`Detail` (clothing layers, collar, belt, face, fabric grain), a camera's
:class:`CameraDetail` (light side, shading, motion blur, JPEG compression) and passers-by in the
crop, all from random streams of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

FRONT, BACK, SIDE_LEFT, SIDE_RIGHT = 0, 1, 2, 3
VIEW_NAMES = ("front", "back", "side_left", "side_right")

# Clothing hues: dark and desaturated colours dominate real pedestrian data.
_CLOTH_BASE = np.array([
    [30, 30, 30], [60, 60, 60], [120, 120, 120], [200, 200, 200], [235, 235, 235],  # greys
    [40, 40, 120], [30, 30, 170], [70, 90, 200],  # reds (BGR)
    [120, 60, 30], [160, 90, 40], [90, 50, 20],  # blues
    [40, 110, 40], [60, 140, 90],  # greens
    [40, 140, 200], [50, 190, 230],  # oranges / yellows
    [110, 70, 120], [150, 120, 170],  # purple / pink
    [60, 90, 130], [90, 130, 170],  # browns / beige
], dtype=np.float64)
_SKIN = np.array([[190, 205, 235], [150, 175, 215], [110, 140, 190], [70, 95, 140], [50, 70, 100]], np.float64)
_HAIR = np.array([[20, 20, 25], [30, 45, 70], [50, 80, 120], [90, 140, 190], [160, 160, 170]], np.float64)


def _colour(rng: np.random.Generator, table: np.ndarray, jitter: float = 18.0) -> np.ndarray:
    c = table[rng.integers(len(table))] + rng.normal(0, jitter, 3)
    return np.clip(c, 0, 255)


@dataclass
class Identity:
    """Appearance and gait of one synthetic person. Colours are BGR float arrays in [0, 255];
    lengths are fractions of the person's height; cadence is gait cycles per frame."""

    height: float
    build: float
    skin: np.ndarray
    hair: np.ndarray
    hair_style: int  # 0 bald, 1 short, 2 long
    hat: np.ndarray | None
    top: np.ndarray
    top2: np.ndarray
    pattern: int  # 0 solid, 1 horizontal stripes, 2 vertical split, 3 front logo, 4 chequered
    long_sleeves: bool
    bottom: np.ndarray
    bottom_style: int  # 0 trousers, 1 shorts, 2 skirt
    shoes: np.ndarray
    backpack: np.ndarray | None
    bag: np.ndarray | None
    bag_side: int  # 0 left, 1 right (the person's side)
    cadence: float
    stride: float
    arm_swing: float
    bounce: float
    details: dict = field(default_factory=dict)
    detail: "Detail | None" = None  # fine appearance, drawn by the detailed renderer only

    @staticmethod
    def sample(rng: np.random.Generator) -> "Identity":
        top = _colour(rng, _CLOTH_BASE)
        return Identity(
            height=float(rng.uniform(0.9, 1.05)),
            build=float(rng.uniform(0.8, 1.25)),
            skin=_colour(rng, _SKIN, 8),
            hair=_colour(rng, _HAIR, 10),
            hair_style=int(rng.choice(3, p=[0.1, 0.6, 0.3])),
            hat=_colour(rng, _CLOTH_BASE) if rng.random() < 0.15 else None,
            top=top,
            top2=_colour(rng, _CLOTH_BASE),
            pattern=int(rng.choice(5, p=[0.45, 0.2, 0.12, 0.13, 0.1])),
            long_sleeves=bool(rng.random() < 0.6),
            bottom=_colour(rng, _CLOTH_BASE[:12]),
            bottom_style=int(rng.choice(3, p=[0.7, 0.18, 0.12])),
            shoes=_colour(rng, _CLOTH_BASE[:5], 10),
            backpack=_colour(rng, _CLOTH_BASE) if rng.random() < 0.3 else None,
            bag=_colour(rng, _CLOTH_BASE) if rng.random() < 0.25 else None,
            bag_side=int(rng.integers(2)),
            **Identity.sample_gait(rng),
        )

    @staticmethod
    def sample_gait(rng: np.random.Generator) -> dict:
        return dict(
            cadence=float(rng.uniform(0.045, 0.11)),
            stride=float(rng.uniform(0.25, 0.55)),
            arm_swing=float(rng.uniform(0.1, 0.7)),
            bounce=float(rng.uniform(0.005, 0.03)),
        )

    def lookalike(self, rng: np.random.Generator, how: str) -> "Identity":
        """A copy that differs only in gait (``how='gait'``) or in one small detail
        (``how='detail'``: shoes, logo colour, bag, hair colour or sleeve length)."""
        import copy

        o = copy.deepcopy(self)
        if how == "gait":
            g = Identity.sample_gait(rng)
            # make the gait clearly different from the original
            g["cadence"] = float(np.clip(self.cadence * rng.choice([0.6, 1.6]), 0.035, 0.14))
            for k, v in g.items():
                setattr(o, k, v)
            o.details = {"differs_in": "gait"}
        else:
            what = str(rng.choice(["shoes", "logo", "bag", "hair", "sleeves"]))
            if what == "shoes":
                o.shoes = np.clip(255 - self.shoes, 0, 255)
            elif what == "logo":
                o.pattern, o.top2 = 3, _colour(rng, _CLOTH_BASE[5:])
            elif what == "bag":
                o.bag = None if self.bag is not None else _colour(rng, _CLOTH_BASE)
            elif what == "hair":
                o.hair = _HAIR[(int(np.argmin(((_HAIR - self.hair) ** 2).sum(1))) + 2) % len(_HAIR)].copy()
            else:
                o.long_sleeves = not self.long_sleeves
            o.details = {"differs_in": what}
        return o


@dataclass
class Detail:
    """Fine appearance of one identity, drawn only by the detailed renderer (``Preset.detail =
    1``; issue 24): what tells look-alike people apart in real footage at 128x64. PETS 2009's
    men in dark jackets and jeans differ in a shirt under an open jacket, a collar, hair and face,
    the cut of the shoulders and the stripes of a jumper, which the first renderer draws none of.

    Colours are BGR float arrays in [0, 255]; ``grain`` is a (48, 24) float32 texture of unit
    standard deviation in body coordinates (head to feet, shoulder to shoulder), ``texture_top``
    and ``texture_bottom`` its contrast above and below the hips (fraction of intensity)."""

    shoulder: float  # shoulder width / hip width
    open_jacket: bool
    opening: float  # fraction of the torso's width that an open jacket shows of the layer under it
    inner: np.ndarray
    collar: np.ndarray | None
    belt: np.ndarray | None
    stripes: int  # stripes across a striped top (pattern 1)
    beard: bool
    eyes: np.ndarray
    glasses: np.ndarray | None
    texture_top: float
    texture_bottom: float
    grain: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator) -> "Detail":
        shirts = _CLOTH_BASE[[2, 3, 4, 4, 8, 9, 5, 18]]  # shirts under jackets: mostly light
        noise = rng.normal(0, 1, (48, 24)).astype(np.float32)
        sigma = float(rng.uniform(0.4, 1.5))
        grain = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma * float(rng.uniform(0.5, 1.0)), sigmaY=sigma * float(rng.uniform(1.0, 2.5)))
        grain = np.clip(grain / max(float(grain.std()), 1e-6), -2.5, 2.5).astype(np.float32)
        return Detail(
            shoulder=float(rng.uniform(0.9, 1.3)),
            open_jacket=bool(rng.random() < 0.35),
            opening=float(rng.uniform(0.2, 0.45)),
            inner=_colour(rng, shirts),
            collar=_colour(rng, shirts) if rng.random() < 0.35 else None,
            belt=_colour(rng, _CLOTH_BASE[:2], 10) if rng.random() < 0.25 else None,
            stripes=int(rng.integers(4, 10)),
            beard=bool(rng.random() < 0.15),
            eyes=_colour(rng, _HAIR[:2], 6),
            glasses=_colour(rng, _CLOTH_BASE[:2], 8) if rng.random() < 0.15 else None,
            texture_top=float(rng.uniform(0.02, 0.12)),
            texture_bottom=float(rng.uniform(0.02, 0.15)),
            grain=grain,
        )


@dataclass
class CameraDetail:
    """What the detailed renderer adds to a camera: JPEG compression (quality 1-100, as a
    surveillance encoder's), horizontal motion blur (kernel length in pixels at 128x64, 0 for
    none), the side the light comes from (-1 left .. 1 right) and how deep a body's
    cylindrical shading is at its edges (fraction of intensity)."""

    jpeg_quality: int
    motion_blur: int
    light: float
    shading: float

    @staticmethod
    def sample(rng: np.random.Generator) -> "CameraDetail":
        return CameraDetail(jpeg_quality=int(rng.integers(30, 91)), motion_blur=int(rng.choice([0, 0, 2, 3, 4])),
                            light=float(rng.uniform(-1, 1)), shading=float(rng.uniform(0.1, 0.35)))


@dataclass
class Camera:
    """One synthetic camera: background (BGR uint8, wider than a crop so that tracklets see
    different parts of it), gain, per-channel colour cast, preferred view, person scale
    (fraction of the crop height), Gaussian blur sigma (pixels at 128x64) and noise std."""

    background: np.ndarray
    gain: float
    cast: np.ndarray
    view_probs: np.ndarray
    scale: float
    blur: float
    noise: float
    detail: CameraDetail | None = None  # set: frames are drawn by the detailed renderer

    @staticmethod
    def sample(rng: np.random.Generator, height: int, width: int) -> "Camera":
        bw = width * 6
        base = rng.uniform(40, 200, 3)
        grad = np.linspace(0.7, 1.2, height)[:, None, None] * base[None, None, :]
        bg = np.repeat(grad, bw, axis=1)
        bg = bg + rng.normal(0, 6, (height, bw, 1))
        bg = np.clip(bg, 0, 255).astype(np.uint8)
        # clutter: windows, doors, poles, posters, kerbs
        for _ in range(int(rng.integers(25, 50))):
            c = tuple(int(v) for v in np.clip(base * rng.uniform(0.3, 1.6, 3), 0, 255))
            x = int(rng.integers(0, bw))
            y = int(rng.integers(0, height))
            kind = rng.integers(4)
            if kind == 0:
                cv2.rectangle(bg, (x, y), (x + int(rng.integers(4, 40)), y + int(rng.integers(4, 40))), c, -1)
            elif kind == 1:
                cv2.line(bg, (x, 0), (x + int(rng.integers(-5, 6)), height), c, int(rng.integers(1, 4)))
            elif kind == 2:
                cv2.circle(bg, (x, y), int(rng.integers(2, 10)), c, -1)
            else:
                cv2.line(bg, (0, y), (bw, y + int(rng.integers(-8, 9))), c, int(rng.integers(1, 3)))
        ground = int(height * rng.uniform(0.75, 0.9))
        bg[ground:] = np.clip(bg[ground:].astype(np.int16) * 0.7 + 20, 0, 255).astype(np.uint8)
        main = int(rng.integers(4))
        probs = np.full(4, 0.1)
        probs[main] = 0.55
        probs[main ^ 1] += 0.15  # the opposite direction of the same walkway
        probs /= probs.sum()
        return Camera(
            background=bg,
            gain=float(rng.uniform(0.65, 1.3)),
            cast=rng.uniform(0.82, 1.18, 3),
            view_probs=probs,
            scale=float(rng.uniform(0.72, 0.92)),
            blur=float(rng.uniform(0.0, 1.1)),
            noise=float(rng.uniform(2.0, 9.0)),
        )


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def _c(col: np.ndarray, shade: float = 1.0) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(col * shade, 0, 255))


class TrackletRenderer:
    """Renders the frames of one tracklet.

    Args:
        ident: who walks.
        cam: where.
        length: number of frames (>= 1).
        rng: the tracklet's generator (view, phase, jitter, occlusion, noise).
        height, width: crop size in pixels.
        junk: render a bad detection (background, a fragment of a body, or heavy
            occlusion) instead of a person, as MARS's junk boxes are.
        detail_rng: the detailed renderer's own generator (used when ``cam.detail`` is set):
            passers-by in the crop. A separate stream, so that the first renderer's draws, and
            its frames, are the same whether or not it is given.

    With ``cam.detail`` set (``Preset.detail = 1``) frames are drawn by the detailed renderer:
    the people's :class:`Detail` (clothing layers, collar, belt, face, fabric texture), shading
    across the body lit from the camera's side, other pedestrians passing beside or in front of
    the person, motion blur and JPEG compression (:class:`CameraDetail`).
    """

    def __init__(self, ident: Identity | None, cam: Camera, length: int, rng: np.random.Generator,
                 height: int = 128, width: int = 64, junk: bool = False, detail_rng: np.random.Generator | None = None):
        self.ident, self.cam, self.length, self.H, self.W = ident, cam, length, height, width
        self.junk = junk
        self.view = int(rng.choice(4, p=cam.view_probs))
        self.phase0 = float(rng.uniform(0, 2 * math.pi))
        bw = cam.background.shape[1]
        self.bg_x0 = float(rng.uniform(0, bw - width))
        self.speed = float(rng.uniform(0.6, 1.6)) * (1 if self.view == SIDE_RIGHT else -1 if self.view == SIDE_LEFT else 0.15)
        # detection-box jitter: AR(1) offsets in pixels and a scale factor
        a = 0.7
        e = rng.normal(0, 1, (length, 3)) * np.array([1.2, 1.0, 0.025]) * math.sqrt(1 - a * a)
        j = np.zeros((length, 3))
        for t in range(length):
            j[t] = (a * j[t - 1] if t else 0) + e[t]
        self.jitter = j * (height / 128.0) * np.array([1, 1, 128.0 / height])
        # occlusion episodes: (start, end, kind, colour, x position/speed)
        self.occl = []
        if rng.random() < 0.35:
            for _ in range(int(rng.integers(1, 3))):
                dur = max(1, int(length * rng.uniform(0.1, 0.4)))
                s = int(rng.integers(0, max(1, length - dur + 1)))
                self.occl.append((s, s + dur, int(rng.integers(3)), _c(rng.uniform(20, 220, 3)),
                                  float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-1.5, 1.5))))
        self.noise_bank = rng.normal(0, cam.noise, (4, height, width, 3)).astype(np.float32)
        self.noise_idx = rng.integers(0, 4, length)
        self.cast = (cam.cast * cam.gain).astype(np.float32)
        self.junk_kind = int(rng.integers(3)) if junk else -1
        self.ksize = 0 if cam.blur < 0.3 else int(2 * math.ceil(2 * cam.blur * height / 128) + 1)
        # passers-by (detailed renderer): (start, end, identity, view, x offset, x speed, feet offset,
        # scale, gait phase, in front of the person)
        self.passers = []
        if cam.detail is not None and detail_rng is not None:
            while detail_rng.random() < 0.35 and len(self.passers) < 2:
                other = Identity.sample(detail_rng)
                other.detail = Detail.sample(detail_rng)
                dur = max(1, int(length * detail_rng.uniform(0.2, 0.8)))
                s = int(detail_rng.integers(0, max(1, length - dur + 1)))
                self.passers.append((s, s + dur, other, int(detail_rng.integers(4)),
                                     float(detail_rng.choice([-1, 1]) * detail_rng.uniform(0.35, 0.75) * width),
                                     float(detail_rng.uniform(-1.0, 1.0)), float(detail_rng.normal(0, 0.05 * height)),
                                     float(detail_rng.uniform(0.85, 1.1)), float(detail_rng.uniform(0, 2 * math.pi)),
                                     bool(detail_rng.random() < 0.4)))

    def frames(self):
        """Yield ``length`` frames, uint8 BGR arrays of shape (H, W, 3)."""
        for t in range(self.length):
            yield self.frame(t)

    def frame(self, t: int) -> np.ndarray:
        H, W = self.H, self.W
        bg = self.cam.background
        x0 = int(self.bg_x0 + self.speed * t) % (bg.shape[1] - W)
        img = bg[:, x0:x0 + W].copy() if bg.shape[0] == H else cv2.resize(bg[:, x0:x0 + W], (W, H))
        dx, dy, ds = self.jitter[t]
        if self.ident is not None and (not self.junk or self.junk_kind == 1):
            ph = H * self.cam.scale * self.ident.height * (1 + ds)
            feet = H * 0.5 + ph * 0.5 + dy
            cx = W * 0.5 + dx
            if self.junk_kind == 1:  # a fragment: shifted far off-centre
                cx += W * 0.45
                feet -= ph * 0.35
            if self.cam.detail is None:
                self._person(img, cx, feet, ph, t)
            else:
                self._passers(img, t, cx, feet, ph, front=False)
                self._detailed_person(img, self.ident, self.view, self.phase0, cx, feet, ph, t)
                self._passers(img, t, cx, feet, ph, front=True)
        for (s, e, kind, col, xpos, vx) in self.occl:
            if s <= t < e:
                x = int(W * (0.5 + xpos) + vx * (t - s))
                if kind == 0:  # a pole or pillar
                    cv2.rectangle(img, (x - W // 8, 0), (x + W // 8, H), col, -1)
                elif kind == 1:  # a lower-body occluder (car, bench)
                    cv2.rectangle(img, (0, int(H * 0.6)), (W, H), col, -1)
                else:  # another pedestrian's blob passing by
                    cv2.ellipse(img, (x, int(H * 0.55)), (W // 4, int(H * 0.42)), 0, 0, 360, col, -1)
        if self.junk_kind == 2:
            cv2.rectangle(img, (0, int(H * 0.2)), (W, H), self.occl[0][3] if self.occl else (90, 90, 90), -1)
        if self.ksize:
            img = cv2.GaussianBlur(img, (self.ksize, self.ksize), self.cam.blur * H / 128)
        cd = self.cam.detail
        if cd is not None and cd.motion_blur:
            n = max(2, int(round(cd.motion_blur * H / 128)))
            img = cv2.filter2D(img, -1, np.full((1, n), 1.0 / n, np.float32))
        out = img.astype(np.float32) * self.cast + self.noise_bank[self.noise_idx[t]]
        out = np.clip(out, 0, 255).astype(np.uint8)
        if cd is not None:  # compression last, as a camera's encoder
            out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, cd.jpeg_quality])[1], cv2.IMREAD_COLOR)
        return out

    def _passers(self, img: np.ndarray, t: int, cx: float, feet: float, ph: float, front: bool) -> None:
        for (s, e, other, view, xoff, vx, dfeet, scale, phase0, in_front) in self.passers:
            if s <= t < e and in_front == front:
                self._detailed_person(img, other, view, phase0, cx + xoff + vx * (t - s), feet + dfeet,
                                      ph * scale * other.height / max(self.ident.height, 1e-6), t)

    def _detailed_person(self, img: np.ndarray, ident: Identity, view: int, phase0: float, cx: float, feet: float,
                         ph: float, t: int) -> None:
        """Draw ``ident`` with its :class:`Detail`, shaded across the body (lit from the camera's
        side) and textured (its fabric grain, scaled to the body), over ``img``."""
        H, W = img.shape[:2]
        layer = img.copy()
        self._person(layer, cx, feet, ph, t, ident, view, phase0)
        mask = np.zeros((H, W), np.uint8)
        self._person(mask, cx, feet, ph, t, ident, view, phase0, paint=lambda col, shade=1.0: (255, 255, 255))
        m = mask > 0
        if not m.any():
            return
        cd, d = self.cam.detail, ident.detail
        u = np.clip((np.arange(W, dtype=np.float32) - cx) / max(1.0, 0.17 * ph * ident.build), -1.0, 1.0)
        gain = np.broadcast_to((1 - cd.shading * u * u + 0.12 * cd.light * u)[None, :], (H, W)).copy()
        if d is not None:
            bw, bh = max(2, int(0.5 * ph * ident.build)), max(2, int(ph))
            g = cv2.resize(d.grain, (bw, bh), interpolation=cv2.INTER_LINEAR)
            y0, x0 = int(round(feet - ph)), int(round(cx - bw / 2))
            ys, xs = slice(max(0, y0), min(H, y0 + bh)), slice(max(0, x0), min(W, x0 + bw))
            if ys.start < ys.stop and xs.start < xs.stop:
                gy = g[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
                rows = np.arange(ys.start, ys.stop)[:, None]
                amp = np.where(rows < feet - ph * 0.48, d.texture_top, d.texture_bottom).astype(np.float32)
                gain[ys, xs] *= 1 + amp * gy
        shaded = np.clip(layer.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)
        img[m] = shaded[m]

    def _person(self, img: np.ndarray, cx: float, feet: float, ph: float, t: int, ident: Identity | None = None,
                view: int | None = None, phase0: float | None = None, paint=_c) -> None:
        """Draw a person (default: this tracklet's) into ``img``; ``paint(colour, shade)`` gives the
        drawing colour (a constant one draws the silhouette, the detailed renderer's mask)."""
        p = self.ident if ident is None else ident
        view = self.view if view is None else view
        phase = (self.phase0 if phase0 is None else phase0) + 2 * math.pi * p.cadence * t
        d = p.detail
        s = math.sin(phase)
        top = feet - ph + p.bounce * ph * abs(s) * -1 + p.bounce * ph
        hip_y = top + 0.52 * ph
        sh_y = top + 0.17 * ph
        side = view in (SIDE_LEFT, SIDE_RIGHT)
        torso_w = (0.17 if side else 0.27) * ph * p.build
        leg_w = max(1, int(0.085 * ph * p.build))
        arm_w = max(1, int(0.055 * ph * p.build))
        leg_len = 0.47 * ph
        arm_len = 0.36 * ph
        flip = view == SIDE_LEFT
        # side views are drawn walking right and mirrored for walking left
        if flip:
            cx = img.shape[1] - cx
        canvas = img
        if flip:
            canvas = np.ascontiguousarray(img[:, ::-1])
        bottom_col = p.bottom
        leg_col_upper = bottom_col if p.bottom_style != 2 else p.skin
        leg_col_lower = bottom_col if p.bottom_style == 0 else p.skin
        near_bag_visible = p.bag is not None and ((view == SIDE_RIGHT and p.bag_side == 0) or (view == SIDE_LEFT and p.bag_side == 1))

        def leg(angle: float, lift: float, shade: float, xoff: float) -> None:
            hx, hy = cx + xoff, hip_y
            L = leg_len * (1 - lift)
            kx, ky = hx + math.sin(angle) * L * 0.5, hy + math.cos(angle) * L * 0.5
            fx, fy = hx + math.sin(angle) * L, hy + math.cos(angle) * L
            cv2.line(canvas, _pt(hx, hy), _pt(kx, ky), paint(leg_col_upper, shade), leg_w)
            cv2.line(canvas, _pt(kx, ky), _pt(fx, fy), paint(leg_col_lower, shade), leg_w)
            fl = leg_w * (1.1 if side else 0.55)
            cv2.ellipse(canvas, _pt(fx + (fl * 0.4 if side else 0), fy), (max(1, int(fl)), max(1, int(leg_w * 0.4))),
                        0, 0, 360, paint(p.shoes, shade), -1)

        def arm(angle: float, shade: float, xoff: float) -> None:
            sx, sy = cx + xoff, sh_y
            ex, ey = sx + math.sin(angle) * arm_len * 0.5, sy + math.cos(angle) * arm_len * 0.5
            hx, hy = sx + math.sin(angle * 1.3) * arm_len, sy + math.cos(angle * 1.3) * arm_len
            upper = p.top
            lower = p.top if p.long_sleeves else p.skin
            cv2.line(canvas, _pt(sx, sy), _pt(ex, ey), paint(upper, shade), arm_w)
            cv2.line(canvas, _pt(ex, ey), _pt(hx, hy), paint(lower, shade), arm_w)
            cv2.circle(canvas, _pt(hx, hy), max(1, arm_w // 2 + 1), paint(p.skin, shade), -1)

        if side:
            st, sw = p.stride * s, p.arm_swing * s
            # far limbs first, darker
            if p.bag is not None and not near_bag_visible:
                cv2.rectangle(canvas, _pt(cx - 0.06 * ph, hip_y - 0.1 * ph), _pt(cx + 0.06 * ph, hip_y + 0.02 * ph), paint(p.bag, 0.6), -1)
            arm(sw, 0.7, 0)
            leg(-st, 0, 0.75, 0)
            if p.backpack is not None:
                cv2.rectangle(canvas, _pt(cx - torso_w * 0.5 - 0.1 * ph, sh_y + 0.02 * ph), _pt(cx - torso_w * 0.3, sh_y + 0.26 * ph), paint(p.backpack), -1)
        else:
            lift_l, lift_r = 0.12 * p.stride * max(0.0, s), 0.12 * p.stride * max(0.0, -s)
            sway = 0.01 * ph * s
            cx += sway
            for (lift, off) in ((lift_l, -0.07), (lift_r, 0.07)):
                leg(0.0, lift, 1.0, off * ph * p.build)
            for (off, sgn) in ((-1, 1), (1, -1)):
                a = 0.12 * off + 0.15 * p.arm_swing * s * sgn * 0.3
                arm(a, 0.9, off * (torso_w * 0.5 + arm_w * 0.3))
        # torso
        x1, x2 = cx - torso_w / 2, cx + torso_w / 2
        if d is None:
            cv2.rectangle(canvas, _pt(x1, sh_y - 0.02 * ph), _pt(x2, hip_y), paint(p.top), -1)
        else:  # shoulders wider (or narrower) than the hips
            sw_half = torso_w / 2 * (1 + (d.shoulder - 1) * (0.4 if side else 1.0))
            cv2.fillConvexPoly(canvas, np.array([_pt(cx - sw_half, sh_y - 0.02 * ph), _pt(cx + sw_half, sh_y - 0.02 * ph),
                                                 _pt(x2, hip_y), _pt(x1, hip_y)], np.int32), paint(p.top))
        tw, th = x2 - x1, hip_y - sh_y
        if p.pattern == 1:
            n_stripes = 4 if d is None else d.stripes
            for k in range(n_stripes):
                yy = sh_y + th * (0.1 + 0.88 * k / n_stripes)
                cv2.rectangle(canvas, _pt(x1, yy), _pt(x2, yy + th * (0.09 if d is None else 0.4 / n_stripes)),
                              paint(p.top2), -1)
        elif p.pattern == 2:
            cv2.rectangle(canvas, _pt(cx, sh_y - 0.02 * ph), _pt(x2, hip_y), paint(p.top2), -1)
        elif p.pattern == 3 and view == FRONT:
            cv2.rectangle(canvas, _pt(cx - tw * 0.2, sh_y + th * 0.2), _pt(cx + tw * 0.2, sh_y + th * 0.45), paint(p.top2), -1)
        elif p.pattern == 4:
            for i in range(3):
                for k in range(4):
                    if (i + k) % 2:
                        cv2.rectangle(canvas, _pt(x1 + tw * i / 3, sh_y + th * k / 4), _pt(x1 + tw * (i + 1) / 3, sh_y + th * (k + 1) / 4), paint(p.top2), -1)
        if d is not None:
            self._garment_detail(canvas, d, view, cx, sh_y, hip_y, tw, th, ph, paint)
        if p.bottom_style == 2:
            pts = np.array([_pt(x1, hip_y - 0.02 * ph), _pt(x2, hip_y - 0.02 * ph), _pt(x2 + 0.05 * ph, hip_y + 0.18 * ph), _pt(x1 - 0.05 * ph, hip_y + 0.18 * ph)], np.int32)
            cv2.fillConvexPoly(canvas, pts, paint(bottom_col))
        if p.backpack is not None:
            if view == BACK:
                cv2.rectangle(canvas, _pt(cx - tw * 0.35, sh_y + th * 0.05), _pt(cx + tw * 0.35, sh_y + th * 0.7), paint(p.backpack), -1)
            elif view == FRONT:
                for off in (-0.3, 0.3):
                    cv2.line(canvas, _pt(cx + tw * off, sh_y), _pt(cx + tw * off, sh_y + th * 0.6), paint(p.backpack), max(1, arm_w // 2))
        if p.bag is not None and not side:
            side_sign = (-1 if p.bag_side == 1 else 1) * (1 if view == FRONT else -1)
            bx = cx + side_sign * (tw * 0.5 + 0.04 * ph)
            cv2.rectangle(canvas, _pt(bx - 0.05 * ph, hip_y - 0.08 * ph), _pt(bx + 0.05 * ph, hip_y + 0.05 * ph), paint(p.bag), -1)
        if side:
            leg(st, 0, 1.0, 0)
            arm(-sw, 1.0, 0)
            if near_bag_visible:
                cv2.rectangle(canvas, _pt(cx - 0.07 * ph, hip_y - 0.1 * ph), _pt(cx + 0.05 * ph, hip_y + 0.03 * ph), paint(p.bag), -1)
        # head, hair, hat
        hr = 0.065 * ph
        hy = top + hr
        hx = cx + (0.02 * ph if side else 0)
        cv2.circle(canvas, _pt(hx, hy), max(1, int(hr)), paint(p.skin), -1)
        if p.hair_style:
            if view == BACK:
                cv2.circle(canvas, _pt(hx, hy), max(1, int(hr)), paint(p.hair), -1)
            else:
                cv2.ellipse(canvas, _pt(hx - (0.02 * ph if side else 0), hy - hr * 0.3), (max(1, int(hr * 1.05)), max(1, int(hr * 0.8))), 0, 180, 360, paint(p.hair), -1)
            if p.hair_style == 2:
                hx2 = hx - (hr * 0.6 if side else 0)
                cv2.rectangle(canvas, _pt(hx2 - hr * (0.5 if side else 1.0), hy), _pt(hx2 + hr * (0.5 if side else 1.0), hy + hr * (2.2 if view != FRONT else 1.2)), paint(p.hair), -1 if view != FRONT else 2)
        if d is not None and view != BACK:
            self._face_detail(canvas, p, d, side, hx, hy, hr, paint)
        if p.hat is not None:
            cv2.rectangle(canvas, _pt(hx - hr * 1.1, hy - hr * 1.1), _pt(hx + hr * 1.1, hy - hr * 0.4), paint(p.hat), -1)
        if flip:
            img[:] = canvas[:, ::-1]

    @staticmethod
    def _garment_detail(canvas, d: "Detail", view: int, cx: float, sh_y: float, hip_y: float,
                        tw: float, th: float, ph: float, paint) -> None:
        """An open jacket's inner layer, a collar and a belt (the detailed renderer)."""
        side = view in (SIDE_LEFT, SIDE_RIGHT)
        if d.open_jacket and view != BACK:
            if side:  # the inner layer shows as a strip at the chest's front edge
                cv2.rectangle(canvas, _pt(cx + tw * 0.3, sh_y + th * 0.05), _pt(cx + tw * 0.5, hip_y), paint(d.inner), -1)
            else:
                half = tw * d.opening / 2
                cv2.fillConvexPoly(canvas, np.array([_pt(cx - half * 1.4, sh_y - 0.02 * ph), _pt(cx + half * 1.4, sh_y - 0.02 * ph),
                                                     _pt(cx + half, hip_y), _pt(cx - half, hip_y)], np.int32), paint(d.inner))
        if d.collar is not None:
            cw = tw * (0.18 if side else 0.32)
            y0 = sh_y - 0.03 * ph
            if view == BACK or side:
                cv2.rectangle(canvas, _pt(cx - cw, y0), _pt(cx + cw, y0 + 0.025 * ph), paint(d.collar), -1)
            else:
                for sgn in (-1, 1):
                    cv2.fillConvexPoly(canvas, np.array([_pt(cx + sgn * cw, y0), _pt(cx, y0 + 0.07 * ph),
                                                         _pt(cx + sgn * cw * 0.3, y0)], np.int32), paint(d.collar))
        if d.belt is not None:
            cv2.line(canvas, _pt(cx - tw / 2, hip_y - 0.01 * ph), _pt(cx + tw / 2, hip_y - 0.01 * ph), paint(d.belt),
                     max(1, int(0.015 * ph)))

    @staticmethod
    def _face_detail(canvas, p: Identity, d: "Detail", side: bool, hx: float, hy: float, hr: float, paint) -> None:
        """Beard, eyes and glasses on a face seen from the front or the side."""
        if d.beard:
            cv2.ellipse(canvas, _pt(hx + (hr * 0.3 if side else 0), hy + hr * 0.45), (max(1, int(hr * (0.6 if side else 0.8))),
                        max(1, int(hr * 0.5))), 0, 0, 180, paint(p.hair, 0.8), -1)
        eye_y = hy - hr * 0.05
        eyes = (hx + hr * 0.55,) if side else (hx - hr * 0.4, hx + hr * 0.4)
        for ex in eyes:
            cv2.circle(canvas, _pt(ex, eye_y), max(1, int(hr * 0.15)), paint(d.eyes), -1)
        if d.glasses is not None:
            x0 = hx + (hr * 0.1 if side else -hr * 0.85)
            cv2.line(canvas, _pt(x0, eye_y), _pt(hx + hr * 0.85, eye_y), paint(d.glasses), max(1, int(hr * 0.2)))
