"""SPP: spatial pyramid pooling, levels l = 0 .. pyramid_height - 1  (Caffe's SPP).

Level l pools the whole (H, W) plane into 2^l x 2^l bins with Pooling of, per axis,
kernel = ceil(H / 2^l), pad = (kernel * 2^l - H + 1) // 2, stride = kernel (Caffe's
GetPoolingParam). Each level's (N, C, bins, bins) output is flattened and the levels are
concatenated: top (N, C * sum_l 4^l). With pyramid_height 1 the top is the single
level's (N, C, 1, 1), as in Caffe. Backward sums the levels' bottom gradients.
"""
from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer
from .blob import Blob
from .pooling import Pooling

_METHODS = {pb.SPPParameter.MAX: pb.PoolingParameter.MAX,
            pb.SPPParameter.AVE: pb.PoolingParameter.AVE,
            pb.SPPParameter.STOCHASTIC: pb.PoolingParameter.STOCHASTIC}


def level_geometry(size, level):
    """Caffe's (kernel, pad) along an axis of `size` pixels for pyramid level `level`."""
    bins = 2 ** level
    kernel = -(-size // bins)
    return kernel, (kernel * bins - size + 1) // 2


class SPP(Layer):
    """Pooling at 1, 2x2, 4x4, ... bins over the whole plane, flattened and concatenated."""

    type = "SPP"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.spp_param
        if p.pyramid_height < 1:
            raise NetError(f"layer '{self.name}': spp_param.pyramid_height must be at least "
                           f"1, got {p.pyramid_height}")
        if p.pool not in _METHODS:
            raise NetError(f"layer '{self.name}': unknown pooling method {p.pool}")
        self.pyramid_height = p.pyramid_height
        self.method = _METHODS[p.pool]
        self._key = None

    def _level(self, level, height, width):
        """The Pooling layer of one pyramid level for an (height, width) plane."""
        (kh, ph), (kw, pw) = level_geometry(height, level), level_geometry(width, level)
        if ph >= kh or pw >= kw:
            raise self.shape_error(
                f"input {height}x{width} is too small for pyramid level {level} "
                f"({2 ** level} bins per side): its padding ({ph}, {pw}) reaches the kernel "
                f"({kh}, {kw}); Caffe rejects this too")
        param = pb.LayerParameter(name=f"{self.name}/level{level}", type="Pooling")
        param.pooling_param.pool = self.method
        param.pooling_param.kernel_h, param.pooling_param.kernel_w = kh, kw
        param.pooling_param.stride_h, param.pooling_param.stride_w = kh, kw
        param.pooling_param.pad_h, param.pooling_param.pad_w = ph, pw
        return Pooling(param, self.phase, self.dtype)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise self.shape_error(f"bottom must be 4-D (N, C, H, W), got {shape}")
        num, channels, height, width = shape
        xp = array_module(bottom[0].data)
        if self._key != (shape, xp):
            self._levels, self._outputs = [], []
            for level in range(self.pyramid_height):
                pool = self._level(level, height, width)
                output = Blob((), self.dtype)
                pool.setup(bottom, [output])
                pool.reshape(bottom, [output])
                self._levels.append(pool)
                self._outputs.append(output)
            self._scratch = Blob(shape, self.dtype)
            self._key = (shape, xp)
        if self.pyramid_height == 1:
            top[0].reshape(self._outputs[0].shape)
        else:
            top[0].reshape(num, sum(o.count for o in self._outputs) // num)

    def _spans(self):
        """Each level's output and its columns in the concatenated top."""
        start = 0
        for output in self._outputs:
            width = output.count // output.shape[0]
            yield output, slice(start, start + width)
            start += width

    def forward_cpu(self, bottom, top):
        self._forward(bottom, top, "forward_cpu")

    def forward_gpu(self, bottom, top):
        self._forward(bottom, top, "forward_gpu")

    def backward_cpu(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, "backward_cpu")

    def backward_gpu(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, "backward_gpu")

    def _forward(self, bottom, top, path):
        if self.pyramid_height == 1:
            return getattr(self._levels[0], path)(bottom, top)
        num = bottom[0].shape[0]
        for pool, (output, columns) in zip(self._levels, self._spans()):
            getattr(pool, path)(bottom, [output])
            top[0].data[:, columns] = output.data.reshape(num, -1)

    def _backward(self, top, propagate_down, bottom, path):
        if not propagate_down[0]:
            return
        if self.pyramid_height == 1:
            return getattr(self._levels[0], path)(top, propagate_down, bottom)
        # Each level writes a whole bottom gradient: the first into the bottom, the rest
        # into scratch, added up (Caffe's Split backward).
        scratch = self._scratch
        scratch.data = bottom[0].data
        for k, (pool, (output, columns)) in enumerate(zip(self._levels, self._spans())):
            output.diff[...] = top[0].diff[:, columns].reshape(output.shape)
            getattr(pool, path)([output], propagate_down, [bottom[0] if k == 0 else scratch])
            if k > 0:
                bottom[0].diff += scratch.diff
