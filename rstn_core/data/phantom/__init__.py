"""A synthetic contrast-enhanced abdominal CT phantom that makes the papers' problem real.

The one job: a small, low-contrast, irregular target among look-alike neighbours, so that a
coarse 2D network on the whole slice struggles and a fine network on a box around the organ
does better — and (the ``lookalike`` knob) so that a fine network that sees *only* the box is
fooled by structures that wider context identifies, which is where RSTN's saliency from the
coarse map should help (CVPR 2018, Fig. 2).

How a case is made (all geometry in millimetres, then sampled on the voxel grid; the anatomy
depends only on (seed, case id), not on the grid (but for sub-voxel details), so the smoke,
standard, colab and paper scales of one case show the same patient; `phantom_preset` lists
their grids: 96 x 96 x 48 at 3.67 x 3.67 x 6.4 mm, 160 x 160 x 96 at 2.2 x 2.2 x 3.2 mm,
256 x 256 x 128 at 1.375 x 1.375 x 2.4 mm, 512 x 512 x L at 0.7 x 0.7 x 1 mm):

1. Tissues are painted into a tissue map by priority (`tissues.TISSUE_TABLE`, in the order
   of `anatomy.BUILD_STEPS`): air, CT table, body
   outline with subcutaneous fat and a muscle wall, visceral fat, erector spinae, quadratus
   lumborum and psoas, vertebrae (cancellous body, cortical rim, discs, canal, posterior
   elements), ribs, lung bases, diaphragm and heart when the field of view reaches them,
   liver (two lobes, lumpy surface, hepatic and portal vessels), spleen (crescent), kidneys
   (cortex, medulla, sinus fat), adrenal glands (thin inverted Ys), gallbladder, stomach
   (fluid, gas at the anterior side, 4-5 mm wall), duodenal C-loop around the pancreatic head,
   colon with haustra and mottled stool and gas, 10-13 small-bowel loops (random walks; fluid,
   gas or collapsed), aorta, IVC, iliac vessels, coeliac trunk, splenic and hepatic arteries,
   SMA, SMV, portal and splenic veins, renal vessels, and the pancreas.
2. The pancreas: a curved head-neck-body-tail tube (Catmull-Rom centreline through 9 jittered
   control points, radius 8-15 mm, flatter antero-posteriorly) plus an ellipsoidal head, all
   scaled by ``target_scale`` x U(0.92, 1.08), rotated and shifted per case; the head sits in
   the duodenal C-loop, the neck in front of the SMV/portal confluence, the body arches over
   the SMA and aorta with the splenic vein along its back, the tail rises to the splenic
   hilum. Lobulated edges come from smooth value noise added to its distance field. There
   is no fat *inside* the label (clefts no method can see capped every method near 0.85 on
   the first phantom): the label is exactly the tissue that is painted.
3. Fat planes: a 2-3.5 mm layer of fat is carved between the gland and any touching bowel,
   duodenum, stomach, liver, spleen or gallbladder, except on a random
   ``fat_plane_missing_prob`` fraction
   of its surface (smooth noise), where the neighbour's wall (HU like the pancreas) presses
   directly against it. Collapsed bowel and the look-alikes always keep a fat plane (the
   larger of 3 mm and 1.3 voxels), so every label boundary is visible in the image.
4. Cysts (``cysts``): 1-3 ellipsoids of 0-20 HU with 0-3 thin septa, 0.002%-0.1% of a
   352 x 352 x 240 mm volume in total (log-uniform); the gland grows around them (2.5 mm rim),
   and in 10% of the cases one cyst bulges out (15-45% of its radius outside). Label 2.
5. Look-alikes (``lookalike``): three sites — in front of the neck/body, below the body/tail,
   in front of the head — each present with probability ``lookalike``. A site is a
   horizontal bowel loop (one axial plane) whose middle runs parallel to the pancreas at one
   fat plane's distance, as thick as the gland, collapsed: solid, with the pancreas's HU and
   texture (offset 30 x (1 - lookalike) HU) and lobulated like it. Both ends turn away in the
   same plane and fold back into the abdomen; only where the loop is farther than the fine
   crop's margin (``lookalike_margin_px`` at 512 px, i.e. ~21 mm) from the gland's box does
   its lumen open (gas or fluid). Inside the box it looks like pancreas; in the whole axial
   slice it visibly continues into a bowel loop. Label 14 (``bowel_lookalike``; the target
   ``"bowel"`` joins 13 and 14). On 8 standard cases, 78% of the solid look-alike voxels that
   lie in a pancreas box (+9 px, the standard test frame) belong to a loop whose lumen shows in
   the same axial slice outside that box (4% inside it).
6. The image: HU per tissue from the papers' table with per-case enhancement (U(-20, 20) HU
   times each tissue's enhancement factor, plus +-5 HU jitter per tissue; the pancreas 105-130
   HU), the ``contrast`` knob (every soft tissue's HU difference to the pancreas is
   multiplied by it), fine texture (lobules) and slow texture (stool, liver mottling),
   partial-volume blur (``blur_vox``), spatially correlated noise (``noise_hu``, ~0.9 mm
   correlation), clipped to [-1024, 3071].

Measured on 20 standard cases (seed 0; tests/test_phantom.py checks cases 0-2): the pancreas
is 0.12-0.24% of the voxels; its largest axial slice is 0.6-1.7% of the slice (< 1.5% in 18 of
20), its largest slice in the other views up to 1.3% (constant x) and 1.95% (constant y, the
whole head or body in one plane); median HU under it 93-118; the best single HU interval scores
DSC <= 0.065 against it over the volume (<= 0.31 inside its box + 20 px); cysts lie >= 95%
inside the gland in 19 of 20. Time to make a case (CPU seconds): smoke ~0.3, standard ~0.8,
colab ~2.2 (cases 0-2: pancreas 0.13-0.16% of the voxels, as at standard), paper ~25 (peak ~2 GB
at 512 x 512 x 383); writing it (gzip NIfTI) adds ~20 s at paper scale.

Modules: `config` (PhantomConfig, the scales), `tissues` (the HU table), `geometry` (shape
primitives in mm), `canvas` (the case under construction), the build steps `body`, `organs`,
`pancreas` and `lookalikes`, `render` (the image), `anatomy` (one case: `make_case`) and
`write` (a data set on disk, in parallel processes: `write_dataset`).
"""
from rstn_core.data.labels import PHANTOM_LABELS
from rstn_core.data.phantom.anatomy import make_case
from rstn_core.data.phantom.config import GENERATOR_VERSION, SCALES, PhantomConfig, phantom_preset
from rstn_core.data.phantom.write import write_dataset

__all__ = ["PhantomConfig", "phantom_preset", "make_case", "write_dataset", "SCALES",
           "PHANTOM_LABELS", "GENERATOR_VERSION"]
