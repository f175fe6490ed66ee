"""Pictures on top of a conversion, behind a few small hooks in ``convert``.

- every exported image: a colour map (:mod:`.colormap`), then a label overlay (:mod:`.overlay`);
- ``--pair``: the mask exported as a label map into a parallel tree with identical names;
- after each view: a contact sheet (:mod:`.montage`) and animations (:mod:`.animation`), built
  from the images just written, so they show exactly what the conversion produced;
- after the sidecar: the HTML viewer (:mod:`.html_viewer`).

When no picture option is set every hook is a no-op and the images are unchanged.

Paired layout (``--pair MASK``)::

    OUT/images/<stem>/axial/<stem>_axial_0042.png   the anatomy, as without --pair
    OUT/masks/<stem>/axial/<stem>_axial_0042.png    the mask: same size, same name, label values
    OUT/images/<stem>/<stem>.json, OUT/masks/<stem>/<stem>.json
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..encoding import decode, encode
from ..errors import InputError
from ..files import write_file
from ..naming import display_name, index_width
from ..options import ConvertOptions
from ..plan import Plan
from ..resample import resize_labels
from ..sidecar import dumps as sidecar_dumps
from ..slicing import view_block
from ..types import ImageFormat, View
from ..window import Window

if TYPE_CHECKING:
    from ..read import NiftiFile
    from .colormap import Colormap
    from .overlay import Mask

# The picture modules (and OpenCV, which they draw with) are imported by the hook that needs
# them: a conversion without picture options loads none of them.

PAIR_TMP = ".niftislice-pair-masks"  # the mask tree inside the temporary output folder
IMAGES_DIR, MASKS_DIR = "images", "masks"


def pair_roots(out_root: Path, options: ConvertOptions) -> tuple[Path, Path | None]:
    """Where images (and, with ``pair``, masks) go: ``OUT`` or ``OUT/images`` + ``OUT/masks``.

    With ``masks`` (a folder of masks paired by name) images go to ``OUT/images`` even for an
    input whose mask is missing (``allow_missing_masks``)."""
    if options.pictures.pair:
        return out_root / IMAGES_DIR, out_root / MASKS_DIR
    if options.masks:
        return out_root / IMAGES_DIR, None
    return out_root, None


def _labels_block(plan: Plan, mask: Mask, view: View) -> np.ndarray:
    return view_block(plan.reo.apply(mask.labels), plan.geometries[view])


class Painter:
    """One view's per-image work: ``painter(image, k)`` is the picture to write for slice ``k``;
    ``extra_files(k, name)`` are the paired mask images to write beside it."""

    def __init__(self, pictures: Pictures, view: View) -> None:
        plan = pictures.plan
        self.view = view
        self.cmap = pictures.cmap
        self.alpha = plan.options.pictures.overlay_alpha
        self.contour = plan.options.pictures.overlay_contour
        self.fmt = plan.options.format
        smp = plan.samplings[view]
        self.size = (smp.width, smp.height)
        self._overlay = _labels_block(plan, pictures.overlay, view) if pictures.overlay else None
        self._pair = _labels_block(plan, pictures.pair, view) if pictures.pair else None

    def labels(self, block: np.ndarray, k: int) -> np.ndarray:
        return resize_labels(block[k], self.size[0], self.size[1])

    def __call__(self, image: np.ndarray, k: int) -> np.ndarray:
        if self.cmap is not None:
            image = self.cmap.apply(image)
        if self._overlay is not None:
            from .overlay import paint_labels

            image = paint_labels(image, self.labels(self._overlay, k), self.alpha, self.contour)
        return image

    def pair_labels(self, k: int) -> np.ndarray | None:
        """The paired mask's image of slice ``k`` (label values, the image's size), if any."""
        return None if self._pair is None else self.labels(self._pair, k)

    def extra_files(self, k: int, name: str) -> list[tuple[Path, bytes]]:
        labels = self.pair_labels(k)
        if labels is None:
            return []
        data = encode(labels, self.fmt)
        return [(Path(PAIR_TMP) / self.view.value / name, data)]


def _colormap(name: str) -> Colormap:
    from .colormap import get_colormap

    return get_colormap(name)


def _load_mask(path: str | Path, nf: NiftiFile, role: str) -> Mask:
    from .overlay import load_mask

    return load_mask(path, nf, role)


class Pictures:
    """Everything picture-related for one file's conversion (see the module docstring)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        opts = plan.options.pictures
        self.cmap: Colormap | None = _colormap(opts.colormap) if opts.colormap else None
        where = plan.nf.path.name
        if self.cmap is not None and plan.window is None:
            raise InputError(
                f"colormap: {where} is a colour (RGB) volume; a colour map needs scalar data"
            )
        if self.cmap is not None and plan.label:
            raise InputError(
                f"colormap: {where} is a label map; use --no-label to window it, "
                "or show the labels with --overlay"
            )
        if opts.overlay and plan.window is not None and plan.window.out_max > 255:
            raise InputError(
                f"overlay: {where} is exported as 16-bit (its labels go beyond 255); "
                "colours need 8-bit images"
            )
        self.overlay: Mask | None = (
            _load_mask(opts.overlay, plan.nf, "overlay") if opts.overlay else None
        )
        self.pair: Mask | None = None
        if opts.pair:
            same = (
                self.overlay is not None
                and Path(opts.pair).resolve() == self.overlay.path.resolve()
            )
            self.pair = self.overlay if same else _load_mask(opts.pair, plan.nf, "pair")
        self.montages: list[dict[str, Any]] = []
        self.animations: list[dict[str, Any]] = []
        self._painters: dict[View, Painter] = {}

    @property
    def active(self) -> bool:
        o = self.plan.options.pictures
        return bool(
            self.cmap or self.overlay or self.pair or o.montage or o.gif or o.webp_anim or o.html
        )

    # -- hooks -----------------------------------------------------------------------------

    def prepare(self, folder: Path) -> None:
        """Create the paired mask folders inside the (temporary) output folder."""
        if self.pair is not None:
            for view in self.plan.geometries:
                (folder / PAIR_TMP / view.value).mkdir(parents=True, exist_ok=True)

    @property
    def needs_content(self) -> bool:
        """Whether :meth:`finish_view` needs to know which slices are blank (for a montage)."""
        return self.plan.options.pictures.montage

    def painter(self, view: View) -> Painter:
        if view not in self._painters:
            self._painters[view] = Painter(self, view)
        return self._painters[view]

    def finish_view(
        self,
        folder: Path,
        stem: str,
        view: View,
        t: int | None,
        names: dict[int, str],
        content: list[int],
    ) -> None:
        """Montage and animations of one view (of volume ``t`` in 4D) from the images written;
        ``content`` lists the written slices that are not blank (see :attr:`needs_content`)."""
        opts = self.plan.options.pictures
        if not self.plan.is_4d:
            self._painters.pop(view, None)  # this view's label blocks are no longer needed
        if not names or not (opts.montage or opts.gif or opts.webp_anim):
            return
        from .animation import encode_animation
        from .montage import build_montage, evenly_spaced, label_image

        g = self.plan.geometries[view]
        letters = g.edge_letters
        tpart = f"_t{t:0{index_width(self.plan.nf.n_volumes)}d}" if t is not None else ""
        prefix = f"{stem}{tpart}_{view.value}"
        order = sorted(names)

        def image(k: int) -> np.ndarray:
            return decode((folder / view.value / names[k]).read_bytes())

        if opts.montage:
            picks = evenly_spaced(order, opts.montage_count, content)
            m = build_montage([(k, image(k)) for k in picks], letters, self._caption(view))
            sheet = self._with_colour_bar(m.image)
            name = f"{prefix}_montage.png"
            write_file(folder / name, encode(sheet, ImageFormat.PNG))
            self.montages.append(
                {
                    "view": view.value,
                    "volume": t,
                    "file": name,
                    "tiles": [tile.to_json() for tile in m.tiles],
                }
            )
        formats = [fmt for fmt, wanted in (("gif", opts.gif), ("webp", opts.webp_anim)) if wanted]
        frames = [label_image(image(k), letters, str(k)) for k in order] if formats else []
        for fmt in formats:
            name = f"{prefix}_animation.{fmt}"
            write_file(
                folder / name, encode_animation(frames, fmt, opts.fps, self.plan.options.quality)
            )
            self.animations.append(
                {
                    "view": view.value,
                    "volume": t,
                    "file": name,
                    "format": fmt,
                    "frames": len(frames),
                    "fps": opts.fps,
                    "slices": order,
                }
            )

    def sidecar_fields(self) -> dict[str, Any]:
        """Fields to add to the sidecar (nothing when no picture option is set)."""
        if not self.active:
            return {}
        opts = self.plan.options.pictures
        overlay = None
        if self.overlay is not None:
            overlay = {
                **self.overlay.to_json(),
                "alpha": opts.overlay_alpha,
                "mode": "contour" if opts.overlay_contour else "filled",
            }
        pair = None
        if self.pair is not None:
            pair = {
                "role": "image",
                "mask": self.pair.to_json(),
                "images_root": IMAGES_DIR,
                "masks_root": MASKS_DIR,
                "layout": "the mask image of OUT/images/<path> is OUT/masks/<path> (same name, "
                "same size, label values, nearest neighbour)",
            }
        return {
            "pictures": {
                "colormap": self.cmap.to_json() if self.cmap else None,
                "overlay": overlay,
                "pair": pair,
                "montages": self.montages,
                "animations": self.animations,
                "html": "index.html" if opts.html else None,
            }
        }

    def finish(self, folder: Path, stem: str, sidecar: dict[str, Any]) -> None:
        """After the sidecar: the paired masks' sidecar and the HTML viewer."""
        if self.pair is not None:
            write_file(
                folder / PAIR_TMP / f"{stem}.json",
                sidecar_dumps(self._mask_sidecar(sidecar)).encode(),
            )
        if self.plan.options.pictures.html:
            from .html_viewer import build_page

            write_file(folder / "index.html", build_page(sidecar, stem).encode("utf-8"))

    # -- helpers ---------------------------------------------------------------------------

    def _with_colour_bar(self, sheet: np.ndarray) -> np.ndarray:
        """A montage with the colour map's bar below it (as it is without a colour map)."""
        if self.cmap is None or self.plan.window is None:
            return sheet
        from .colormap import colour_bar

        return np.vstack([sheet, colour_bar(self.cmap, self.plan.window, sheet.shape[1])])

    def _caption(self, view: View) -> str:
        from .histogram import number

        plan = self.plan
        display = "neurological" if plan.options.neurological else "radiological"
        window = (
            "colour volume"
            if plan.window is None
            else f"window {number(plan.window.low)}..{number(plan.window.high)}"
        )
        cmap = f"  {self.cmap.name}" if self.cmap else ""
        name = display_name(plan.nf.path.name, ascii_only=True)  # OpenCV draws ASCII only
        return f"{name}  {view.value}  {window}{cmap}  {display}"

    def _mask_sidecar(self, sidecar: dict[str, Any]) -> dict[str, Any]:
        assert self.pair is not None
        out = copy.deepcopy(sidecar)
        top = max(self.pair.values, default=0)
        out_max = 255 if top <= 255 else 65535
        identity = Window(0.0, float(out_max), out_max, "label: pixel = mask label, 0 = background")
        out["intensity"] = {"kind": "label", **identity.to_json()}
        out["output"] = {
            **out["output"],
            "interpolation": "nearest",
            "label": True,
            "bit_depth": 8 if top <= 255 else 16,
        }
        out["pictures"] = {"pair": {**out["pictures"]["pair"], "role": "mask"}}
        return out
