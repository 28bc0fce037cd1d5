"""Hard rasterizer at 512 x 512: vafx vs OpenGL's software rasterizer, same meshes and views.

Meshes: the ICT face region, the full ICT head, and a 200k-triangle sphere, each scaled
to fill about 80% of a 512 x 512 image, orthographic.

Anchor: OpenGL software rendering (Mesa's llvmpipe through moderngl with a headless EGL
context; `pip install moderngl`, part of the bench extra), triangle ids written by a
fragment shader with the depth test on, read back to the host: the same work, done by a
rasterizer people use. Where it cannot start, no speed claim is printed.

Reference, not an anchor: a plain numpy z-buffer, one triangle at a time over its bounding
box (edge functions, z-test), against which both are checked pixel by pixel; its time is
printed for scale only (a Python loop over triangles is no one's rasterizer).

Also: vafx batched (16 views of the ICT face, `rasterize_batch`), and the soft
rasterizer's forward + backward pass for the ICT face at 256 x 256 (sigma 1 px^2; internal,
no anchor). Needs the ICT model ($VAFX_DATA or ../shared/data). Run: python bench/bench_raster.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import trimesh

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _timing import median_seconds, report  # noqa: E402
from vafx.kernels.raster import (  # noqa: E402
    SOFT_GROUPS,
    raster_plan,
    rasterize,
    rasterize_batch,
    soft_plan,
    soft_rasterize,
)

import vafx  # noqa: E402


def numpy_raster(v, f, h, w):
    zbuf = np.full((h, w), np.inf)
    tri_id = np.full((h, w), -1, np.int64)
    for i, (a, b, c) in enumerate(v[f]):
        x0, x1 = (
            int(max(np.floor(min(a[0], b[0], c[0])), 0)),
            int(min(np.ceil(max(a[0], b[0], c[0])), w - 1)),
        )
        y0, y1 = (
            int(max(np.floor(min(a[1], b[1], c[1])), 0)),
            int(min(np.ceil(max(a[1], b[1], c[1])), h - 1)),
        )
        if x1 < x0 or y1 < y0:
            continue
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if area == 0:
            continue
        yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        w0 = ((c[0] - b[0]) * (yy - b[1]) - (c[1] - b[1]) * (xx - b[0])) / area
        w1 = ((a[0] - c[0]) * (yy - c[1]) - (a[1] - c[1]) * (xx - c[0])) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        z = w0 * a[2] + w1 * b[2] + w2 * c[2]
        sub = zbuf[y0 : y1 + 1, x0 : x1 + 1]
        win = inside & (z < sub)
        sub[win] = z[win]
        tri_id[y0 : y1 + 1, x0 : x1 + 1][win] = i
    return tri_id, zbuf


_VERTEX = """
#version 330
uniform vec2 size;
uniform vec2 zrange;
in vec3 p;
void main() {
    // pixel (y, x) samples (u, v) = (x, y); GL samples window (x + 0.5, y + 0.5), y up
    gl_Position = vec4((p.x + 0.5) / size.x * 2.0 - 1.0, 1.0 - (p.y + 0.5) / size.y * 2.0,
                       (p.z - zrange.x) / (zrange.y - zrange.x) * 2.0 - 1.0, 1.0);
}
"""
_FRAGMENT = """
#version 330
out int id;
void main() { id = gl_PrimitiveID + 1; }  // 0 stays background
"""


class OpenGLRaster:
    """Triangle ids by OpenGL (Mesa llvmpipe, headless EGL), one image per call; None if absent."""

    def __init__(self, h, w):
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.renderer = self.ctx.info["GL_RENDERER"]
        self.prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self.prog["size"].value = (w, h)
        self.fbo = self.ctx.framebuffer(
            color_attachments=[self.ctx.renderbuffer((w, h), components=1, dtype="i4")],
            depth_attachment=self.ctx.depth_renderbuffer((w, h)),
        )
        self.h, self.w = h, w

    def __call__(self, v, f):
        import moderngl

        tri = np.ascontiguousarray(v[f].reshape(-1, 3), np.float32)  # unindexed: ids = triangles
        z = tri[:, 2]
        self.prog["zrange"].value = (float(z.min()) - 1.0, float(z.max()) + 1.0)
        vbo = self.ctx.buffer(tri.tobytes())
        vao = self.ctx.vertex_array(self.prog, [(vbo, "3f", "p")])
        self.fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(moderngl.TRIANGLES)
        ids = np.frombuffer(self.fbo.read(components=1, dtype="i4"), np.int32)
        vao.release()
        vbo.release()
        return ids.reshape(self.h, self.w)[::-1] - 1


def _opengl(h, w):
    try:
        return OpenGLRaster(h, w)
    except Exception as e:  # moderngl missing, or no EGL device
        print(f"(OpenGL anchor skipped: {type(e).__name__}: {e})")
        return None


def to_image(verts, size=512, fill=0.8):
    v = np.asarray(verts, np.float64)
    c = (v.max(0) + v.min(0)) / 2
    s = fill * size / np.ptp(v[:, :2], axis=0).max()
    return np.c_[
        (v[:, 0] - c[0]) * s + size / 2,
        size / 2 - (v[:, 1] - c[1]) * s,
        (c[2] - v[:, 2]) * s + 1000,
    ].astype(np.float32)


def main():
    data = Path(os.environ.get("VAFX_DATA") or HERE.parents[1] / "shared" / "data")
    model = vafx.load_ict_npz(data / "ict" / "ict_facekit_light.npz")
    face = vafx.template_from_model(model, "face")
    sphere = trimesh.creation.uv_sphere(count=[224, 224])  # about 200k triangles
    meshes = [
        ("ICT face", face.vertices, face.faces),
        ("ICT head", np.asarray(model.mean), np.asarray(model.faces)),
        ("sphere", np.asarray(sphere.vertices), np.asarray(sphere.faces)),
    ]
    gl = _opengl(512, 512)
    if gl is not None:
        print(f"OpenGL anchor: {gl.renderer}")
    for name, v, f in meshes:
        img = to_image(v)
        f = np.asarray(f, np.int32)
        cap = raster_plan(img, f, 512, 512)
        vj, fj = jnp.asarray(img), jnp.asarray(f)
        run = lambda: rasterize(vj, fj, 512, 512, cap)  # noqa: E731
        ours = run()
        t_ours = median_seconds(run)
        t_np = median_seconds(lambda: numpy_raster(img, f, 512, 512), repeat=1, warmup=0)
        ref_id, ref_z = numpy_raster(img, f, 512, 512)
        same = (np.asarray(ours.triangle) == ref_id).mean()
        if gl is not None:
            t_gl = median_seconds(lambda: gl(img, f))
            same_gl = (gl(img, f) == ref_id).mean()
            report(f"{name} ({len(f)} triangles) 512^2", t_ours, t_gl, "OpenGL")
            print(
                f"    OpenGL's triangle id equals the numpy reference's at {same_gl:.2%} of pixels"
            )
        else:
            print(f"{name} ({len(f)} triangles) 512^2: vafx {t_ours * 1e3:.2f} ms (no anchor)")
        print(f"    {cap}; vafx's triangle id equals the numpy reference's at {same:.2%} of "
              f"pixels (the reference's loop: {t_np * 1e3:.0f} ms, for scale only)")  # fmt: skip
    img = to_image(face.vertices)
    views = []
    for yaw in np.linspace(-0.6, 0.6, 16):
        r = np.asarray(vafx.kernels.camera.rotation_from_euler(yaw, 0.0, 0.0))
        views.append(to_image(face.vertices @ r.T))
    views = np.stack(views)
    f = jnp.asarray(face.faces, jnp.int32)
    plan = raster_plan(views, f, 512, 512)
    vb = jnp.asarray(views)
    t = median_seconds(lambda: rasterize_batch(vb, f, 512, 512, plan), repeat=15)
    print(f"ICT face, batch of 16 views at 512^2: {t / 16 * 1e3:.2f} ms per image")
    small = to_image(face.vertices, 256)
    col = jnp.asarray(np.random.default_rng(0).uniform(size=(face.num_vertices, 3)), jnp.float32)
    cap = soft_plan(small, f, 256, 256, 1.0)

    def loss(v, c):
        rgb, sil = soft_rasterize(v, f, c, 256, 256, cap, sigma=1.0, gamma=1e-2)
        return jnp.mean(rgb) + jnp.mean(sil)

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    vs = jnp.asarray(small)
    # 15 repeats: on a shared 2-core VM a slow spell of a second or two moved a
    # median of 7 by up to 40%
    t = median_seconds(lambda: grad(vs, col), repeat=15)
    fwd = jax.jit(loss)
    t_f = median_seconds(lambda: fwd(vs, col), repeat=15)
    print(
        f"soft rasterizer, ICT face at 256^2: forward {t_f * 1e3:.1f} ms, forward + backward {t * 1e3:.1f} ms (pairs in groups: {sum(c * kx * ky for c, (kx, ky) in zip(cap.levels, SOFT_GROUPS))}, spilled: {cap.spill})"
    )


if __name__ == "__main__":
    main()
