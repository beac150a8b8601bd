"""The process-wide binding to libespeak-ng, loaded from the espeakng-loader wheel via ctypes.

espeak-ng keeps all of its state in C globals: one current voice, one set of parameters, one
synthesis callback per process. This module therefore owns exactly one ``EspeakEngine`` per
process (``EspeakEngine.shared()``), and every synthesis holds one lock from choosing the voice
to the last sample. Code elsewhere in GenGuard that needs espeak (tests that make speech for the
audio classifiers, for instance) should use this engine rather than a second binding: a second
``espeak_Initialize`` or ``espeak_SetSynthCallback`` would race with this one.

The engine runs in synchronous mode (``AUDIO_OUTPUT_SYNCHRONOUS``): ``espeak_Synth`` returns only
after the callback has received every sample, on the calling thread. ctypes releases the GIL
during the call, so synthesis in a worker thread does not stall the event loop.
"""

from __future__ import annotations

import ctypes
import threading
from typing import ClassVar

import espeakng_loader
import numpy as np
from numpy.typing import NDArray

from generators.base import GenerationError

__all__ = ["RATE_MAX", "RATE_MIN", "RATE_NORMAL", "EspeakEngine"]

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EE_OK = 0
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1

RATE_NORMAL = 175
"""espeak's default speaking rate, in words per minute."""
RATE_MIN = 80
"""espeak clamps slower rates to this."""
RATE_MAX = 700
"""Above 450 wpm espeak-ng speeds up with its sonic library; 700 = 4x the normal rate."""

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakVoice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h (only read, never allocated by us)."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class EspeakEngine:
    """libespeak-ng, initialised once per process; ``synthesize`` is thread-safe (serialised)."""

    _shared: ClassVar[EspeakEngine | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        """Private: use ``EspeakEngine.shared()``. Loads and initialises the library."""
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise GenerationError(f"espeak-ng could not be loaded: {exc}") from exc
        _declare_signatures(lib)
        self._lib = lib
        self._callback = _SynthCallback(self._on_samples)  # kept alive as long as the engine
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode("utf-8"), 0
        )
        if sample_rate <= 0:
            raise GenerationError(f"espeak-ng failed to initialise with data from {data_path}")
        self.sample_rate: int = sample_rate
        self.version: str = (lib.espeak_Info(None) or b"unknown").decode("ascii", "replace")

    @classmethod
    def shared(cls) -> EspeakEngine:
        """The process's engine, created on first use."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def resolve_voice(self, voice: str) -> str:
        """Select ``voice`` (``language[+variant]``) and return espeak's identifier for it.

        Raises ``ValueError`` when the language or the variant does not exist: espeak itself
        silently ignores an unknown variant.
        """
        with self._lock:
            self._select_voice(voice)
            current = self._lib.espeak_GetCurrentVoice()
            identifier: bytes = current.contents.identifier if current else b""
        resolved = identifier.decode("utf-8", "replace")
        _, _, variant = voice.partition("+")
        if variant and not resolved.lower().endswith("+" + variant.lower()):
            raise ValueError(f"espeak voice variant {variant!r} not found (got {resolved!r})")
        return resolved

    def synthesize(self, text: str, *, voice: str, rate: int) -> NDArray[np.int16]:
        """Speak ``text`` with ``voice`` at ``rate`` words per minute; mono samples at
        ``sample_rate``. CPU-bound: call it from a worker thread."""
        encoded = text.replace("\x00", " ").encode("utf-8") + b"\x00"
        with self._lock:
            self._select_voice(voice)
            clamped = min(max(rate, RATE_MIN), RATE_MAX)
            if self._lib.espeak_SetParameter(_ESPEAK_RATE, clamped, 0) != _EE_OK:
                raise GenerationError(f"espeak-ng rejected the rate {clamped}")
            # Re-register on every call: cheap, and robust against anyone who replaced it.
            self._lib.espeak_SetSynthCallback(self._callback)
            self._chunks = []
            status = self._lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            pcm, self._chunks = b"".join(self._chunks), []
        if status != _EE_OK:
            raise GenerationError(f"espeak-ng synthesis failed (status {status})")
        return np.frombuffer(pcm, dtype=np.int16)

    def _select_voice(self, voice: str) -> None:
        if self._lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
            raise ValueError(f"espeak voice {voice!r} not found")

    def _on_samples(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 = continue synthesis


def _declare_signatures(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_GetCurrentVoice.argtypes = []
    lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_EspeakVoice)
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,  # text
        ctypes.c_size_t,  # size in bytes, terminator included
        ctypes.c_uint,  # position
        ctypes.c_int,  # position type
        ctypes.c_uint,  # end position (0 = none)
        ctypes.c_uint,  # flags
        ctypes.c_void_p,  # unique identifier out-pointer
        ctypes.c_void_p,  # user data
    ]
    lib.espeak_Synth.restype = ctypes.c_int
