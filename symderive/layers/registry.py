"""The registry of layer kinds: everything the engine does with one kind, in one record.

Each module of this package registers its kinds with ``register``. A ``LayerKind`` holds
what that kind does, and every other module reads it from here instead of keeping a table
of its own: the index formula a problem file calls (``conv1d(x, w, stride=2)``), the
PyTorch op ``--verify`` compares it with, and the ``network:`` stack entry
(``Conv1d(3, 8, kernel_size=3)``) with its torch.nn module. An operation a kind does not
register is a ``MissingRule`` naming the kind and the operation.
"""
from dataclasses import dataclass, field

from ..errors import SymderiveError, VerifyError


class MissingRule(VerifyError, SymderiveError):
    """A layer kind lacks the rule an operation needs (e.g. no torch.nn module for a stack)."""

    def __init__(self, kind, operation, hint=""):
        super().__init__(f"layer kind '{kind}' has no rule for {operation}" + (f": {hint}" if hint else "")
                         + " (register it in its module under symderive/layers/)")
        self.kind, self.operation = kind, operation


@dataclass(frozen=True)
class TorchOp:
    """How ``--verify`` computes a layer with torch, called as ``compute(layer, get, num)``:
    ``get(node)`` is the torch tensor of an input node, ``num(v)`` a size or hyperparameter as an int."""
    torch_name: str           # the PyTorch operation, as a report names it
    compute: object           # (layer, get, num) -> torch tensor
    counterpart: bool = True  # False: computed from the layer's SymPy formula, no PyTorch op


@dataclass(frozen=True)
class Signature:
    """How a ``network:`` call is read: PyTorch's argument names in order, the first ``required``
    of them required, keyword defaults, and ``build(name, call, text, node, **arguments)``."""
    build: object
    positional: tuple
    required: int
    defaults: dict
    numbers: tuple = ()        # arguments that are real numbers (a slope), not sizes
    choices: dict = field(default_factory=dict)   # string arguments: name -> allowed values (approximate)
    read: object = None        # (reader, node, name, call, depth) -> stack layer, for calls that
                               # take more than numbers: Linear(W, B), Residual(layer, ...)


@dataclass(frozen=True)
class NumericRule:
    """A kind's exact step in numeric networks (``numeric_network``), in the form a course writes
    it. An activation without one is computed from its index formula by the engine."""
    forward: object    # (net, layer, name_in, x) -> (exact output, LaTeX, why)
    backward: object   # (net, layer, BackwardStep) -> ∂E/∂(its input) (None: its input is data), recording
                       # its steps
    torch: object = None   # (layer, x, tensors by name) -> torch output, for --verify when the layer reads
                           # declared tensors (a mask, an embedding matrix) that its torch.nn module would not


@dataclass(frozen=True)
class LayerKind:
    """One layer kind. ``formula`` builds the index-formula layer; ``module`` names the PyTorch
    class that writes it in a ``network:`` stack. A kind may have either or both."""
    name: str                              # as a problem file calls it: conv1d, relu, ...
    formula: object = None                 # (name, *tensors, **options) -> Layer
    inputs: tuple = ("input",)             # tensor arguments, PyTorch's names
    options: tuple = ()                    # keyword arguments, PyTorch's names
    numbers: tuple = ()                    # options that are real numbers (a slope), not sizes
    choices: dict = field(default_factory=dict)   # string options: name -> PyTorch's values (reduction)
    flags: tuple = ()                      # options that are True or False (ceil_mode)
    torch: TorchOp = None                  # the torch op of the formula layer, for --verify
    no_torch: str = ""                     # why there is no torch op, when there is none
    module: str = None                     # network: stacks: PyTorch's class name (Conv1d)
    signature: Signature = None            # how that call is read
    torch_module: object = None            # (stack layer, num, bias) -> torch.nn.Module
    torch_module_name: str = ""            # as a report names it
    prefix: str = ""                       # automatic names in stacks: conv1, fc2 (default: module lowercased)
    library: bool = True                   # a function of the Python API (False for an alias)
    numeric: NumericRule = None            # exact forward/backward in numeric networks
    activation: bool = False               # its stack entry is parameter-free and entry by entry
    backward_form: object = None           # (layer, wrt, upstream, free, taken) -> course_forms.BackwardForm or
                                           # None: ∂L/∂wrt through the layer as a course writes its backward pass
    extra: dict = field(default_factory=dict)

    def required(self):
        """The tensor arguments (``inputs``) the formula cannot do without: those its builder
        takes with no default (``bias=None`` is optional)."""
        import inspect
        params = list(inspect.signature(self.formula).parameters.values())[1:]     # after the layer's name
        return {slot for slot, p in zip(self.inputs, params)
                if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD}


KINDS = {}
MODULES = {}


def register(*kinds):
    """Add kinds to the registry; a name registered twice is a programming error."""
    for kind in kinds:
        if kind.name in KINDS:
            raise ValueError(f"layer kind '{kind.name}' is registered twice")
        if kind.module is not None:
            if kind.module in MODULES:
                raise ValueError(f"network layer '{kind.module}' is registered twice")
            MODULES[kind.module] = kind
        KINDS[kind.name] = kind
    return kinds[0] if len(kinds) == 1 else kinds


def formula_kinds():
    """name -> LayerKind for every kind a problem file can call as an index formula."""
    return {name: kind for name, kind in KINDS.items() if kind.formula is not None}


def formula_kind(name):
    kind = KINDS.get(name)
    if kind is None or kind.formula is None:
        raise MissingRule(name, "an index formula")
    return kind


def module_kind(name):
    """The kind written ``name(...)`` in a ``network:`` stack (PyTorch's class name)."""
    kind = MODULES.get(name)
    if kind is None:
        raise MissingRule(name, "network stacks")
    return kind


def op_for(layer):
    """The ``TorchOp`` of a formula layer, and whether its kind registered one (else its own
    formula is evaluated with torch, and the report names it)."""
    kind = KINDS.get(layer.kind)
    if kind is not None and kind.torch is not None:
        return kind.torch, True
    return KINDS["element formula"].torch, False


def torch_module(layer, num, bias=None, found=None):
    """The torch.nn module of one stack layer (batch-first, channels-first input). ``bias``
    overrides the layer's own bias flag (for counting with or without biases); ``found``
    collects name -> module for the layer and the layers inside it."""
    kind = MODULES.get(layer.kind)
    if kind is None or kind.torch_module is None:
        raise MissingRule(layer.kind, "a torch.nn module (--verify of network stacks)")
    module = kind.torch_module(layer, num, bias)
    if found is not None:
        found[layer.name] = module
        for inner, sub in zip(getattr(layer, "layers", ()), getattr(module, "inner", ())):
            found[inner.name] = sub
    return module
