"""Embedding lookup and one-hot vectors, by integer index.

``embedding(input, weight)`` is PyTorch's ``F.embedding``: ``input`` holds indices (any shape, a
scalar for one word), ``weight`` is (V, d), and y[…, k] = weight[input[…], k]; its derivative by
the weight is δ(input[…], p) δ(k, q), so ∂l/∂weight gathers the upstream rows of the words that
occur. ``one_hot(input, num_classes=C)`` is ``F.one_hot``: y[…, c] = δ(input[…], c), for example
the target of a soft cross entropy (which then derives to softmax − one-hot)."""
import sympy as sp

from ..errors import ExpressionError, ShapeError
from ..latex import matrix, tex_name
from .base import Layer, entry
from .registry import LayerKind, NumericRule, Signature, TorchOp, register
from .stack import Count, NetLayer, dot_latex


class Embedding(Layer):
    """y[…, k] = weight[input[…], k].

    >>> from symderive.tensors import Tensor
    >>> Embedding('e', Tensor('w', (2,)), Tensor('U', (5, 3))).definition((1, 2))
    U[w[1], 2]
    """

    kind = "embedding"

    def __init__(self, name, input, weight):
        if weight.rank != 2:
            raise ShapeError(f"embedding: the weight {weight.name} must be a matrix (num_embeddings, embedding_dim)")
        self.input, self.weight = input, weight
        super().__init__(name, [input, weight], input.shape + (weight.shape[1],))

    def domains(self):
        return {self.input.name: ("labels", self.weight.shape[0])}

    def definition(self, idx, avoid=()):
        return entry(self.weight, (entry(self.input, idx[:-1]), idx[-1]))


class OneHot(Layer):
    """y[…, c] = δ(input[…], c).

    >>> from symderive.tensors import Tensor
    >>> OneHot('Y', Tensor('y', (2,)), num_classes=3).definition((0, 1))
    KroneckerDelta(1, y[0])
    """

    kind = "one_hot"

    def __init__(self, name, input, num_classes=None):
        if num_classes is None:
            raise ShapeError("one_hot: give num_classes (the number of classes)")
        self.input, self.num_classes = input, sp.sympify(num_classes)
        super().__init__(name, [input], input.shape + (self.num_classes,))

    def domains(self):
        return {self.input.name: ("labels", self.num_classes)}

    def definition(self, idx, avoid=()):
        return sp.KroneckerDelta(idx[-1], entry(self.input, idx[:-1]))


def _torch_embedding(layer, get, num):
    import torch.nn.functional as F
    return F.embedding(get(layer.input).long(), get(layer.weight))


def _torch_one_hot(layer, get, num):
    import torch
    import torch.nn.functional as F
    return F.one_hot(get(layer.input).long(), num(layer.num_classes)).to(torch.float64)


# ---------------------------------------------------------------------------------------------
# In network: stacks: Embedding(num_embeddings, embedding_dim), or Embedding(U) with declared weights


class NetEmbedding(NetLayer):
    """``Embedding(V, d)``: V·d parameters; an input of L indices becomes L rows of d numbers
    (PyTorch's (L, d), printed as channels L by length d, so that ``Flatten()`` gives L·d).
    ``Embedding(U)`` with U (V × d) declared with a value, for numeric passes, where the L rows
    come out concatenated (row-major, what ``Flatten()`` after ``nn.Embedding`` gives)."""
    kind = "Embedding"
    has_weights = True

    def __init__(self, name, call, text, node, num_embeddings, embedding_dim, weight=None):
        super().__init__(name, call, text, node)
        self.num_embeddings, self.embedding_dim, self.weight = num_embeddings, embedding_dim, weight

    def count(self, mode):
        return Count(self.num_embeddings * self.embedding_dim, dot_latex(self.num_embeddings, self.embedding_dim))

    def count_note(self):
        return "one row of embedding_dim numbers per index (no bias)"

    def output(self, shape):
        layout = "NCL" if "N" in shape.layout else "CL"
        return type(shape)(shape.batch, shape.channels, (self.embedding_dim,), layout)

    def axis_steps(self, shape):
        return [("", f"each index becomes a row of {self.embedding_dim} numbers")]

    def receptive(self, r, j):
        raise self.error("an embedding looks up indices; it has no receptive field", ExpressionError)

    def value_tensors(self):
        return (self.weight,) if self.weight is not None else ()

    def flat_size(self, size):
        return size * self.embedding_dim


def _read(reader, node, name, call, depth):
    weight = reader.tensor(node.args[0]) if len(node.args) == 1 and not node.keywords else None
    if weight is None:
        options = reader.bind(node, "Embedding", SIGNATURE)
        return NetEmbedding(name, call, reader.text, node, **options)
    if weight.rank != 2:
        reader.fail(node.args[0], f"Embedding(U): U '{weight.name}' must be a matrix (num_embeddings × "
                                  f"embedding_dim)", ShapeError)
    return NetEmbedding(name, call, reader.text, node, weight.shape[0], weight.shape[1], weight)


def _torch_module(layer, num, bias):
    """torch.nn.Embedding; the stacks' shape checks feed random numbers, which it reads as indices
    (|x| rounded down, modulo num_embeddings): only the shapes and the parameters are compared."""
    import torch

    class IndexEmbedding(torch.nn.Embedding):
        def forward(self, x):
            indices = x if not x.is_floating_point() else x.detach().abs().long() % self.num_embeddings
            return super().forward(indices)

    return IndexEmbedding(num(layer.num_embeddings), num(layer.embedding_dim), dtype=torch.float64)


def _numeric_forward(net, layer, name_in, x):
    if layer.weight is None:
        raise layer.error("a numeric pass needs the embedding matrix: Embedding(U), U declared with a value")
    U = net.weights[layer.weight.name]
    for i, v in enumerate(x):
        if not (sp.sympify(v).is_Integer and 0 <= v < U.rows):
            raise layer.error(f"{name_in}[{i + net.ctx.base}] = {v}: an embedding reads indices, whole numbers "
                              f"0..{U.rows - 1}")
    rows = [U.row(int(v)) for v in x]
    value = sp.Matrix([e for row in rows for e in row])
    looked_up = ", ".join(rf"{tex_name(layer.weight.name)}_{{{int(v) + net.ctx.base}, :}}" for v in x)
    return (value, rf"\left[{looked_up}\right] = {matrix(value.T)}^{{T}}",
            f"{layer.name}: row {name_in}[l] of {layer.weight.name} for each index, the rows concatenated")


def _numeric_backward(net, layer, step):
    U = net.weights[layer.weight.name]
    d = U.cols
    grad = sp.zeros(U.rows, d)
    for l, v in enumerate(step.x_in):
        for k in range(d):
            grad[int(v), k] += step.grad[l * d + k]
    grad = grad.applyfunc(net.tidy)
    step.result.param_grads[layer.weight.name] = grad
    name = tex_name(layer.weight.name)
    step.record(rf"\frac{{\partial {tex_name(net.loss_name)}}}{{\partial {name}}} = {net.shown(grad)}",
                f"each looked-up row of {layer.weight.name} gets its part of ∂{net.loss_name}/∂{layer.name} "
                f"(rows looked up twice add); the indices are data, with no gradient")
    return None


def _numeric_torch(layer, x, tensors):
    import torch.nn.functional as F
    return F.embedding(x.detach().long(), tensors[layer.weight.name]).reshape(-1)


SIGNATURE = Signature(None, ("num_embeddings", "embedding_dim"), 2, {}, read=_read)

register(
    LayerKind("embedding", Embedding, ("input", "weight"),
              torch=TorchOp("torch.nn.functional.embedding", _torch_embedding),
              module="Embedding", signature=SIGNATURE, torch_module=_torch_module,
              torch_module_name="torch.nn.Embedding", prefix="embedding",
              numeric=NumericRule(_numeric_forward, _numeric_backward, _numeric_torch)),
    LayerKind("one_hot", OneHot, options=("num_classes",),
              torch=TorchOp("torch.nn.functional.one_hot", _torch_one_hot)),
)
