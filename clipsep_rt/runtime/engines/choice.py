"""Which backend runs the separator: torch, onnxruntime, openvino or native TensorRT, and why.

`probe_environment` looks at the machine and the engine folder once;
`choose_backend` is pure decision logic over that result. `auto` picks the fastest
backend that can run, in this order:

  CUDA: TensorRT plan > onnxruntime TensorRT provider > torch fp16 > onnxruntime CUDA provider
  CPU:  openvino bf16 > torch bf16 (CPUs with native bf16, ~2x fp32) > onnxruntime CPU > torch fp32
        > openvino fp32 (OpenVINO bf16 computes as fast as torch bf16 and starts without torch)

and explains every faster option it skipped. A named backend is checked the same way
and refused (ClipsepError) with the reason when it cannot run. For a stream, `auto` on the CPU
ranks the options that can run here (`cpu_candidates`) by their measured hop time instead
(runtime.engines.hop_probe, from runtime.pipeline).

PyTorch is imported only where it can change the answer (whether it sees a CUDA GPU): not on
a Linux machine with no NVIDIA driver, not for backend onnxruntime on the CPU (nor for device
auto when onnxruntime has no GPU provider), not for precision int8, and not when it is not
installed (then torch's options cannot run and device auto is the CPU). The torch backend
imports it when its engine is built.
That keeps a separation on onnxruntime free of torch's start-up (BENCHMARKS.md, start-up).

INT8 (the engine folder's INT8 graph, `clipsep-rt export --int8`) runs on onnxruntime CPU
when precision int8 is asked for. `auto` does not pick it: on the CPU measured it separated
slower than torch bf16 (BENCHMARKS.md, "INT8 CPU graph"), although its SDRi stayed within
0.2 dB of fp32; `auto` says so when the folder has the graph.

Engine folder: `engine_dir_manifest` is a dict naming the exported files, e.g.
{"onnx": "separator.onnx", "onnx_fp16": "separator.fp16.onnx", "tensorrt_plan": "separator.plan"}
(`SeparatorFiles.backend_files` of the folder's manifest). A key with an empty value, or a
missing key, means that file is absent.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass, field, replace

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model.hardware import cpu_has_native_bf16, nvidia_gpu_possible
from clipsep_rt.runtime.engines.contract import CPU_EP, CUDA_EP, TRT_EP

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
DEVICES = ("auto", "cpu", "cuda")
ENGINE_FILE_KEYS = ("onnx", "onnx_fp16", "onnx_int8", "tensorrt_plan")  # the engine-folder files a backend can load

# Distributions that all install the same `onnxruntime` module: only one may be installed.
ONNXRUNTIME_VARIANTS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-qnn",
    "onnxruntime-training",
)
ONNXRUNTIME_FIX = "pip uninstall onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
EXPORT_HINT = "run clipsep-rt export"
TORCH_MISSING = "PyTorch is not installed (pip install torch)"
NOT_SKIPPED = ("measured ", "warning: ")  # how the reasons that name no skipped option begin


@dataclass(frozen=True)
class Environment:
    """What can run here (probe_environment fills it; tests build fake ones)."""

    gpu_possible: bool = True  # False: no NVIDIA driver here (model.hardware), so torch was not asked
    torch_installed: bool = True
    torch_cuda: bool = False
    cuda_device_name: str | None = None
    cpu_native_bf16: bool = False
    onnxruntime_version: str | None = None  # None: `import onnxruntime` fails
    onnxruntime_providers: tuple[str, ...] = ()
    onnxruntime_packages: tuple[str, ...] = ()  # installed distributions from ONNXRUNTIME_VARIANTS
    openvino_installed: bool = False  # the `openvino` package is there (not imported to check)
    tensorrt_version: str | None = None  # None: `import tensorrt` fails
    tensorrt_error: str | None = None  # why the import failed, when the package is there
    has_onnx: bool = False
    has_onnx_fp16: bool = False
    has_onnx_int8: bool = False
    has_tensorrt_plan: bool = False

    @property
    def onnxruntime_installed(self) -> bool:
        return self.onnxruntime_version is not None

    @property
    def onnxruntime_gpu_provider(self) -> bool:
        """This onnxruntime lists a GPU execution provider (CUDA or TensorRT)."""
        return any(name in self.onnxruntime_providers for name in (CUDA_EP, TRT_EP))

    @property
    def onnxruntime_gpu_installed(self) -> bool:
        return "onnxruntime-gpu" in self.onnxruntime_packages

    @property
    def onnxruntime_conflict(self) -> bool:
        """Both onnxruntime and onnxruntime-gpu: the CPU package shadows the GPU one."""
        return "onnxruntime" in self.onnxruntime_packages and self.onnxruntime_gpu_installed


@dataclass
class BackendChoice:
    name: str  # "torch", "onnxruntime", "openvino" or "tensorrt"
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32", "bf16", "fp16" or "int8"
    reasons: list[str] = field(default_factory=list)  # each faster option skipped, and why
    artifact: str | None = None  # manifest key of the file to load: onnx, onnx_fp16, onnx_int8, tensorrt_plan
    provider: str | None = None  # onnxruntime: the execution provider expected to run it

    def describe(self) -> str:
        where = f" ({self.provider})" if self.provider else ""
        return f"{self.name}{where} on {self.device} in {self.precision}"

    @property
    def label(self) -> str:
        """How a measured ranking names it: backend and precision, e.g. "openvino bf16"."""
        return f"{self.name} {self.precision}"

    def explanation(self) -> list[str]:
        """The reasons as lines to show: "skipped <option>: <why>" for a skipped option, the others
        (a measured ranking, a warning) as they are."""
        return [reason if reason.startswith(NOT_SKIPPED) else f"skipped {reason}" for reason in self.reasons]


# -- probing ----------------------------------------------------------------------------------


def _normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_onnxruntime_packages() -> tuple[str, ...]:
    """The installed distributions that provide the `onnxruntime` module."""
    names = set()
    for dist in importlib.metadata.distributions():
        name = _normalise_name(dist.metadata.get("Name") or "")
        if name in ONNXRUNTIME_VARIANTS:
            names.add(name)
    return tuple(sorted(names))


def engine_files(manifest: dict | None) -> dict[str, bool]:
    """{"has_onnx", "has_onnx_fp16", "has_onnx_int8", "has_tensorrt_plan"} from an engine-folder manifest."""
    manifest = manifest or {}
    return {f"has_{key}": bool(manifest.get(key)) for key in ENGINE_FILE_KEYS}


def probe_environment(engine_dir_manifest: dict | None = None, probe_torch: bool = True,
                      gpu_possible: bool = True) -> Environment:
    """Inspect this machine (torch CUDA, onnxruntime, TensorRT) and the engine folder.
    Without an ONNX graph in the folder onnxruntime is not looked at (importing it and listing
    the installed packages costs about 80 ms): no option it could run has a graph to run.
    `probe_torch=False` leaves torch unimported (torch_cuda False); `probe_torch_fields` adds it.
    `gpu_possible=False` (no NVIDIA driver): onnxruntime is not imported either, only found; its
    providers then count as the CPU one, which every build has (GPU providers cannot start)."""
    files = engine_files(engine_dir_manifest)
    has_graph = files["has_onnx"] or files["has_onnx_fp16"] or files["has_onnx_int8"]
    ort_version, providers, ort_packages = None, (), ()
    if has_graph and not gpu_possible:
        ort_packages = installed_onnxruntime_packages()
        if ort_packages and importlib.util.find_spec("onnxruntime") is not None:
            ort_version, providers = importlib.metadata.version(ort_packages[0]), (CPU_EP,)
    elif has_graph:
        try:
            import onnxruntime

            ort_version = str(onnxruntime.__version__)
            providers = tuple(onnxruntime.get_available_providers())
        except Exception:  # noqa: BLE001, S110 - ImportError, or a broken install: not installed
            pass
        ort_packages = installed_onnxruntime_packages()
    trt_version = trt_error = None
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            trt_version = str(tensorrt.__version__)
        except Exception as exc:  # noqa: BLE001 - e.g. its CUDA libraries are missing
            trt_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return Environment(
        gpu_possible=gpu_possible,
        **(probe_torch_fields() if probe_torch else {"torch_installed": importlib.util.find_spec("torch") is not None}),
        cpu_native_bf16=cpu_has_native_bf16(),
        openvino_installed=importlib.util.find_spec("openvino") is not None,
        onnxruntime_version=ort_version,
        onnxruntime_providers=providers,
        onnxruntime_packages=ort_packages,
        tensorrt_version=trt_version,
        tensorrt_error=trt_error,
        **files,
    )


def probe_torch_fields() -> dict:
    """Environment fields about PyTorch: installed, and whether it sees a CUDA GPU (this
    imports torch, about 2 s on a small CPU)."""
    if importlib.util.find_spec("torch") is None:
        return {"torch_installed": False}
    import torch

    torch_cuda = bool(torch.cuda.is_available())
    return {"torch_installed": True, "torch_cuda": torch_cuda,
            "cuda_device_name": torch.cuda.get_device_name(0) if torch_cuda else None}


def torch_can_change_the_choice(requested: str, device: str, precision: str, env: Environment) -> bool:
    """Whether `choose_backend` needs torch probed, which only tells whether PyTorch sees a CUDA
    GPU: not without an NVIDIA driver (`env.gpu_possible` False), nor for int8 (onnxruntime CPU),
    nor for onnxruntime on the CPU or with device auto and no GPU provider."""
    if precision == "int8" or not env.gpu_possible or requested == "openvino" or device == "cpu":
        return False
    if requested == "onnxruntime":
        return device == "auto" and env.onnxruntime_gpu_provider
    return True


# -- deciding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    name: str
    precision: str
    artifact: str | None = None
    provider: str | None = None
    problem: str | None = None  # why it cannot run; None when it can
    label: str = ""  # how reasons name it

    @property
    def ok(self) -> bool:
        return self.problem is None


def _onnxruntime_gpu_problem(env: Environment, provider: str) -> str | None:
    if not env.onnxruntime_installed:
        return "onnxruntime-gpu is not installed (pip install onnxruntime-gpu)"
    if provider in env.onnxruntime_providers:
        return None
    if env.onnxruntime_conflict:
        return f"onnxruntime and onnxruntime-gpu are both installed and the CPU package shadows the GPU one (fix: {ONNXRUNTIME_FIX})"
    if not env.onnxruntime_gpu_installed:
        return "only the CPU onnxruntime package is installed (pip uninstall onnxruntime && pip install onnxruntime-gpu)"
    return f"this onnxruntime has no {provider}"


def _cuda_options(env: Environment) -> list[_Option]:
    options = []
    # Native TensorRT plan.
    if env.tensorrt_version is None:
        problem = f"cannot import tensorrt ({env.tensorrt_error})" if env.tensorrt_error else "not installed (pip install 'clipsep-rt[gpu]')"
    elif not env.torch_cuda:
        problem = "needs PyTorch with CUDA (its buffers are torch CUDA tensors), and PyTorch sees no GPU"
    elif not env.has_tensorrt_plan:
        problem = f"no TensorRT plan in the engine dir ({EXPORT_HINT} --tensorrt)" if env.has_onnx else f"no ONNX file or TensorRT plan in the engine dir ({EXPORT_HINT})"
    else:
        problem = None
    options.append(_Option("tensorrt", "fp16", "tensorrt_plan", None, problem, "tensorrt"))
    # onnxruntime + TensorRT execution provider (needs the TensorRT libraries too).
    problem = None if env.has_onnx else f"no ONNX file in the engine dir ({EXPORT_HINT})"
    problem = problem or _onnxruntime_gpu_problem(env, TRT_EP)
    if problem is None and env.tensorrt_version is None:
        problem = "the TensorRT libraries are not installed (pip install tensorrt)"
    options.append(_Option("onnxruntime", "fp16", "onnx", TRT_EP, problem, "onnxruntime TensorRT provider"))
    # torch fp16.
    problem = None if env.torch_cuda else (
        "PyTorch sees no CUDA GPU (CPU-only build or no driver)" if env.torch_installed else TORCH_MISSING)
    options.append(_Option("torch", "fp16", None, None, problem, "torch fp16"))
    # onnxruntime + CUDA execution provider: fp16 only with the FP16 ONNX file.
    problem = None if (env.has_onnx or env.has_onnx_fp16) else f"no ONNX file in the engine dir ({EXPORT_HINT})"
    problem = problem or _onnxruntime_gpu_problem(env, CUDA_EP)
    precision, artifact = ("fp16", "onnx_fp16") if env.has_onnx_fp16 else ("fp32", "onnx")
    options.append(_Option("onnxruntime", precision, artifact, CUDA_EP, problem, "onnxruntime CUDA provider"))
    return options


def _graph_runner_problem(env: Environment, installed: bool, extra: str) -> str | None:
    """Why a backend that runs the folder's ONNX graph cannot: no graph, or not installed."""
    if not env.has_onnx:
        return f"no ONNX file in the engine dir ({EXPORT_HINT})"
    return None if installed else f"not installed (pip install 'clipsep-rt[{extra}]')"


def _cpu_options(env: Environment) -> list[_Option]:
    no_bf16 = None if env.cpu_native_bf16 else "this CPU has no native bf16 (AVX512-BF16 or AMX)"
    bf16, fp32 = (no_bf16, None) if env.torch_installed else (TORCH_MISSING, TORCH_MISSING)
    ort = _graph_runner_problem(env, env.onnxruntime_installed, "onnxruntime")
    openvino = _graph_runner_problem(env, env.openvino_installed, "openvino")
    openvino_bf16 = openvino or no_bf16
    return [
        _Option("openvino", "bf16", "onnx", None, openvino_bf16, "openvino bf16"),
        _Option("torch", "bf16", None, None, bf16, "torch bf16"),
        _Option("onnxruntime", "fp32", "onnx", CPU_EP, ort, "onnxruntime CPU"),
        _Option("torch", "fp32", None, None, fp32, "torch fp32"),
        _Option("openvino", "fp32", "onnx", None, openvino, "openvino fp32"),
    ]


INT8_NOT_AUTO = ("not picked by auto: on the CPU measured it separated at 0.40x the speed of torch bf16 "
                 "(0.54x for the full-size U-Net; BENCHMARKS.md, INT8 CPU graph); precision int8 runs it")


def _int8_option(env: Environment) -> _Option:
    if not env.has_onnx_int8:
        problem = f"no INT8 graph in the engine dir ({EXPORT_HINT} --int8 --calibration AUDIO...)"
    elif not env.onnxruntime_installed:
        problem = "onnxruntime is not installed (pip install 'clipsep-rt[onnxruntime]')"
    else:
        problem = None
    return _Option("onnxruntime", "int8", "onnx_int8", CPU_EP, problem, "onnxruntime int8")


def choose_backend(
    requested: str = "auto",
    device: str = "auto",
    engine_dir_manifest: dict | None = None,
    environment: Environment | None = None,
    precision: str = "auto",
) -> BackendChoice:
    """The backend, device and precision to run with, and the faster options skipped.

    requested: auto, torch, onnxruntime or tensorrt. device: auto, cpu or cuda (cuda:N is
    treated as cuda). The engine folder's files come from `engine_dir_manifest`;
    `environment` defaults to probe_environment().
    """
    if requested not in BACKENDS:
        raise OptionError("backend", f"expected one of {', '.join(BACKENDS)}, got {requested!r}")
    if environment is None:
        environment = probe_environment(engine_dir_manifest, probe_torch=False, gpu_possible=nvidia_gpu_possible())
        if environment.torch_installed and torch_can_change_the_choice(requested, device, precision, environment):
            environment = replace(environment, **probe_torch_fields())
    env = replace(environment, **engine_files(engine_dir_manifest))
    if precision == "int8":
        return _decide_int8(requested, device, env)
    choice = _decide(requested, device, env, precision)
    if requested == "auto" and choice.device == "cpu" and env.has_onnx_int8:
        choice.reasons.append(f"onnxruntime int8: {INT8_NOT_AUTO}")
    if choice.name == "onnxruntime" and choice.device == "cuda" and env.onnxruntime_conflict:
        choice.reasons.append(
            f"warning: onnxruntime and onnxruntime-gpu are both installed; this works only until either is reinstalled (fix: {ONNXRUNTIME_FIX})"
        )
    return choice


def _decide(
    requested: str,
    device: str,
    env: Environment,
    precision: str = "auto",
) -> BackendChoice:
    if device.startswith("cuda") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise OptionError("device", f"expected cpu, cuda, cuda:N or auto, got {device!r}")
    kind = "cuda" if device.startswith("cuda") else device
    if kind not in DEVICES:
        raise OptionError("device", f"expected cpu, cuda, cuda:N or auto, got {device!r}")
    reasons: list[str] = []
    if kind == "auto":
        # CUDA when PyTorch sees a GPU (onnxruntime-gpu with a CPU-only PyTorch: ask for device cuda).
        if requested == "tensorrt" or env.torch_cuda:
            kind = "cuda"
        elif requested == "openvino":
            kind = "cpu"
        elif not env.gpu_possible:
            kind = "cpu"
            reasons.append("cuda: no NVIDIA driver on this machine")
        elif requested == "onnxruntime" and not env.onnxruntime_gpu_provider:
            kind = "cpu"
            reasons.append("cuda: this onnxruntime has no GPU execution provider (pip uninstall onnxruntime && pip install onnxruntime-gpu)")
        elif env.torch_installed:
            kind = "cpu"
            reasons.append("cuda: PyTorch sees no CUDA GPU")
        else:
            kind = "cpu"
            reasons.append("cuda: device auto asks PyTorch for a GPU, and PyTorch is not installed "
                           "(--device cuda runs onnxruntime-gpu without it)")
    if requested == "tensorrt" and kind == "cpu":
        raise OptionError("backend", "tensorrt needs an NVIDIA GPU (device cuda)")
    if requested == "openvino" and kind == "cuda":
        raise OptionError("backend", "openvino runs on the CPU here (device cpu); on CUDA use tensorrt, torch or onnxruntime")

    options = _cuda_options(env) if kind == "cuda" else _cpu_options(env)
    if kind == "cpu" and precision != "auto":  # rank only the options that run the precision asked for
        options = [option for option in options if option.precision == precision] or options
    if requested != "auto":
        candidates = [option for option in options if option.name == requested]
        usable = [option for option in candidates if option.ok]
        if requested == "tensorrt" and not usable and env.has_onnx and env.tensorrt_version and env.torch_cuda:
            # Only the plan is missing: ensure_engine builds it from the ONNX file.
            chosen = replace(candidates[0], problem=None)
            reasons.append("tensorrt: no plan yet, it will be built from the ONNX file (takes minutes)")
            return _choice(chosen, kind, reasons)
        if not usable:
            problems = "; ".join(f"{option.label}: {option.problem}" for option in candidates)
            raise ClipsepError(f"backend {requested} on {kind}: {problems}")
        # The faster options of this backend that were skipped (e.g. onnxruntime TensorRT provider).
        for option in candidates[: candidates.index(usable[0])]:
            reasons.append(f"{option.label}: {option.problem}")
        return _choice(usable[0], kind, reasons)

    for option in options:
        if option.ok:
            return _choice(option, kind, reasons)
        reasons.append(f"{option.label}: {option.problem}")
    raise ClipsepError(f"no backend can run on {kind}: " + "; ".join(reasons))  # CUDA asked, nothing runs there


def cpu_candidates(
    engine_dir_manifest: dict | None = None,
    environment: Environment | None = None,
    precision: str = "auto",
) -> tuple[list[BackendChoice], list[str]]:
    """The CPU options `auto` can pick here, in its static order, as choices (reasons empty), and
    why each other one cannot run ("label: problem"): what a measured ranking times
    (runtime.engines.hop_probe). `precision` other than auto keeps the options that run it."""
    if environment is None:
        environment = probe_environment(engine_dir_manifest, probe_torch=False, gpu_possible=nvidia_gpu_possible())
    options = _cpu_options(replace(environment, **engine_files(engine_dir_manifest)))
    if precision != "auto":
        options = [option for option in options if option.precision == precision] or options
    return ([_choice(option, "cpu", []) for option in options if option.ok],
            [f"{option.label}: {option.problem}" for option in options if not option.ok])


def _decide_int8(requested: str, device: str, env: Environment) -> BackendChoice:
    """precision int8: the INT8 graph on onnxruntime's CPU provider, or why it cannot run."""
    if requested not in ("auto", "onnxruntime"):
        raise OptionError("precision", f"int8 runs on the onnxruntime backend, not {requested}")
    if device not in ("auto", "cpu"):
        raise OptionError("precision", "int8 runs on the CPU only (device cpu); on CUDA use fp16")
    option = _int8_option(env)
    if not option.ok:
        raise ClipsepError(f"precision int8: {option.problem}")
    return _choice(option, "cpu", [])


def _choice(option: _Option, device: str, reasons: list[str]) -> BackendChoice:
    return BackendChoice(option.name, device, option.precision, reasons, option.artifact, option.provider)


__all__ = [
    "BACKENDS",
    "BackendChoice",
    "Environment",
    "choose_backend",
    "cpu_candidates",
    "engine_files",
    "installed_onnxruntime_packages",
    "probe_environment",
]
