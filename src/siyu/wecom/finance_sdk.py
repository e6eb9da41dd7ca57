"""ctypes binding to WeCom's conversation-archive SDK, libWeWorkFinanceSdk_C.so (REFERENCE 11.1).

The vendor library is a blocking C API; `FinanceSdk` wraps one SDK handle (NewSdk + Init)
and turns the int return codes into `ArchiveError`. Every call here blocks: async code
runs them in a thread (`siyu.wecom.archive.SdkArchiveSource` does). ctypes releases the
GIL during the C call. GetChatData calls on one handle are serialised by a lock (the
vendor does not document the handle as thread safe); DecryptData needs no handle.

Slices are created with NewSlice and always released with FreeSlice, also on failure;
their content is copied out (`string_at` with GetSliceLen, so embedded NULs survive)
before the slice is freed.
"""

from __future__ import annotations

import _ctypes
import ctypes
import json
import os
import platform
import sys
import threading
from typing import Any

__all__ = ["ArchiveError", "FinanceSdk", "SDK_ERRORS", "RETRYABLE_CODES", "load_library"]

SDK_ERRORS: dict[int, tuple[str, str]] = {
    10000: ("参数错误", "parameter error: check seq, limit (1..1000), corp id and secret"),
    10001: ("网络请求错误", "network error reaching WeCom (check the proxy setting)"),
    10002: ("数据解析失败", "WeCom's answer could not be parsed"),
    10003: ("系统调用失败", "system call failed"),
    10004: ("密钥错误导致加密失败", "key error: encryption failed (check the public key uploaded to WeCom)"),
    10005: ("fileid 错误", "bad sdkfileid"),
    10006: ("解密失败", "decryption failed: the random key does not fit this message"),
    10007: (
        "找不到消息加密版本的私钥，需要重新传入私钥对",
        "no private key for this publickey_ver: upload that key pair",
    ),
    10008: ("解析 encrypt_key 出错", "encrypt_key parse error: the decrypted random key is malformed"),
    10009: ("IP 非法", "this server's IP is not allowed: add it to the archive's trusted IPs"),
    10010: ("数据过期", "data expired: archived messages can be fetched for a few days only"),
    10011: ("证书错误", "certificate error"),
}

RETRYABLE_CODES = frozenset({-1, 10001, 10002, 10003, 45009, 45011, 45033})
"""SDK codes 10001-10003 (network, parse, system) and WeCom's busy/limit codes."""


class ArchiveError(Exception):
    """A failed archive call: `code` (SDK 10000-10011, or a WeCom errcode), `retryable`,
    and where known the `seq` / `msgid` of the chatdata item that failed."""

    def __init__(
        self,
        code: int,
        detail: str = "",
        *,
        retryable: bool | None = None,
        seq: int | None = None,
        msgid: str | None = None,
    ) -> None:
        self.code = int(code)
        self.retryable = self.code in RETRYABLE_CODES if retryable is None else retryable
        self.detail = detail
        self.seq = seq
        self.msgid = msgid
        # the messages of the same batch before the one that failed, decrypted: stored before
        # the error is raised on, so that one bad message holds back only itself and what follows
        self.before: list = []
        super().__init__(self.describe())

    def describe(self) -> str:
        """Chinese and English: what went wrong and, where it helps, what to do."""
        zh, en = SDK_ERRORS.get(self.code, ("会话存档调用失败", "conversation archive call failed"))
        text = f"{self.code} {zh} / {en}"
        if self.detail:  # cut: the seq after it must survive the stored error's own cut (2000)
            text += f" ({self.detail if len(self.detail) <= 300 else self.detail[:300] + '…'})"
        if self.seq is not None:
            text += f" [seq {self.seq}{', msgid ' + self.msgid if self.msgid else ''}]"
        return text


def answered_errcode(data: dict, call: str) -> int:
    """An answer's errcode, 0 where it has none; ArchiveError where it is no whole number (a
    bare ValueError had named neither the call nor what it answered)."""
    value = data.get("errcode") or 0
    digits = value.strip().lstrip("-") if isinstance(value, str) else ""
    if digits.isascii() and digits.isdigit():  # (not ²: a digit int() refuses)
        value = int(value)
    if type(value) is not int:
        raise ArchiveError(10002, f"{call} answered an errcode that is no number: {str(value)[:100]!r}")
    return value


_libs: dict[str, ctypes.CDLL] = {}
_libs_lock = threading.Lock()
# The only library a tenant's path may name: loading one runs its code in Siyu's process, and
# the path is a tenant admin's to set, while the files on the server are its operator's.
LIB_NAME = "libWeWorkFinanceSdk_C.so"


class NotTheSdk(ValueError):
    """A path to something other than WeCom's finance SDK."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"只能填写 {LIB_NAME} 的路径 / the path must name {LIB_NAME}, WeCom's finance SDK: Siyu loads"
            f" no other library (given: {path})"
        )


def names_the_sdk(path: str | os.PathLike[str]) -> bool:
    return os.path.basename(os.fspath(path)) == LIB_NAME


def check_path(path: str, here: bool = False) -> None:
    """NotTheSdk for a path to another file. `here`: the worker that loads it runs in this
    server, which checks for the file: then a ValueError for a bare file name, which the loader
    looks for in the system's library folders (LD_LIBRARY_PATH), never in Siyu's own, where a
    check for the file would find it (workers on other machines may well load it so)."""
    if not names_the_sdk(path):
        raise NotTheSdk(path)
    if here and os.sep not in path:
        raise ValueError(
            f"请填写 SDK 的完整路径，如 /opt/wecom/{LIB_NAME} / the full path is needed: a bare file name"
            " is not looked for in Siyu's folder when the worker loads it"
        )
    if here and (why := unloadable_here(path)):
        raise ValueError(why)


class SdkNotLoaded(OSError):
    """The SDK file is missing, built for another machine, or lacks a function of WeCom's header."""


# ELF e_machine of the SDK builds WeCom offers (x86_64, arm64) and of their 32-bit kin
_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64"}
_HERE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


def unloadable_here(path: str) -> str | None:
    """Why the file at `path` cannot be loaded on this machine, where its first bytes tell:
    glibc says "No such file or directory" for a library of another architecture, and the
    setup page had checked that the file is there."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None  # (missing: the loader says so itself)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        if not sys.platform.startswith("linux"):
            return None  # (a stand-in built for tests on a Mac)
        return f"这不是 Linux 的共享库（.so）/ {path} is not a Linux shared library"
    machine = _MACHINES.get(int.from_bytes(head[18:20], "little" if head[5] == 1 else "big"))
    if machine is not None and machine != _HERE:
        return (
            f"这是 {machine} 版的 SDK，本机是 {_HERE}，请换用 {_HERE} 版"
            f" / {path} is the SDK built for {machine}; this machine is {_HERE}: use that build"
        )
    return None


def load_library(lib_path: str | os.PathLike[str]) -> ctypes.CDLL:
    """Load the SDK (once per path) and declare the function signatures of WeWorkFinanceSdk_C.h.
    NotTheSdk for a file named otherwise."""
    path = os.fspath(lib_path)
    if not names_the_sdk(path):
        raise NotTheSdk(path)
    with _libs_lock:
        lib = _libs.get(path)
        if lib is not None:
            return lib
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise SdkNotLoaded(unloadable_here(path) or f"无法加载 SDK / cannot load {path}: {exc}") from None
        vp, cp = ctypes.c_void_p, ctypes.c_char_p
        signatures: dict[str, tuple[Any, list[Any]]] = {
            "NewSdk": (vp, []),
            "Init": (ctypes.c_int, [vp, cp, cp]),
            "GetChatData": (
                ctypes.c_int,
                [vp, ctypes.c_ulonglong, ctypes.c_uint, cp, cp, ctypes.c_int, vp],
            ),
            "DecryptData": (ctypes.c_int, [cp, cp, vp]),
            "DestroySdk": (None, [vp]),
            "NewSlice": (vp, []),
            "FreeSlice": (None, [vp]),
            # char*, read as a pointer: c_char_p would stop at the first NUL.
            "GetContentFromSlice": (vp, [vp]),
            "GetSliceLen": (ctypes.c_int, [vp]),
        }
        for name, (restype, argtypes) in signatures.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                # unloaded: glibc would hand this very library back for the path, the right
                # file put there since included, until the worker restarted
                _ctypes.dlclose(lib._handle)
                raise SdkNotLoaded(
                    f"{path} 缺少函数 {name}，不是完整的企业微信会话存档 SDK"
                    f" / {path} lacks {name}: not (all of) WeCom's finance SDK"
                ) from None
            fn.restype = restype
            fn.argtypes = argtypes
        _libs[path] = lib
        return lib


def _c(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


class FinanceSdk:
    """One SDK handle for (corp_id, secret), initialised on construction. Blocking."""

    def __init__(self, lib_path: str | os.PathLike[str], corp_id: str, secret: str) -> None:
        self._lib = load_library(lib_path)
        self._lock = threading.Lock()
        handle = self._lib.NewSdk()
        if not handle:
            raise ArchiveError(10003, "NewSdk returned NULL")
        rc = self._lib.Init(handle, _c(corp_id), _c(secret))
        if rc != 0:
            self._lib.DestroySdk(handle)
            raise ArchiveError(rc, "Init failed: check the corp id and the 会话存档 secret")
        self._handle: int | None = handle

    def _read(self, call) -> bytes | int:
        """Run `call(slice)`: the slice's content, or the non-zero return code; the slice is
        freed whatever happens."""
        lib = self._lib
        slice_ = lib.NewSlice()
        if not slice_:
            raise ArchiveError(10003, "NewSlice returned NULL")
        try:
            rc = call(slice_)
            if rc != 0:
                return rc
            ptr, size = lib.GetContentFromSlice(slice_), lib.GetSliceLen(slice_)
            return ctypes.string_at(ptr, size) if ptr and size > 0 else b""
        finally:
            lib.FreeSlice(slice_)

    def get_chat_data(
        self,
        seq: int,
        limit: int = 1000,
        proxy: str | None = None,
        passwd: str | None = None,
        timeout: int = 10,
    ) -> list[dict]:
        """The chatdata items (REFERENCE 11.2) with seq > `seq`, at most `limit` (<= 1000)."""
        with self._lock:
            if self._handle is None:
                raise ArchiveError(10000, "the SDK handle was destroyed")
            handle = self._handle
            out = self._read(
                lambda s: self._lib.GetChatData(
                    handle, int(seq), int(limit), _c(proxy), _c(passwd), int(timeout), s
                )
            )
        if isinstance(out, int):
            raise ArchiveError(out, "GetChatData")
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise ArchiveError(10002, f"GetChatData answered no JSON: {out[:200]!r}") from exc
        if not isinstance(data, dict):
            raise ArchiveError(10002, "GetChatData answered no JSON object")
        errcode = answered_errcode(data, "GetChatData")
        if errcode:
            raise ArchiveError(errcode, str(data.get("errmsg") or "GetChatData"))
        return list(data.get("chatdata") or [])

    def decrypt_data(self, encrypt_key: str, encrypt_msg: str) -> str:
        """DecryptData: the message JSON text for one chatdata item."""
        out = self._read(lambda s: self._lib.DecryptData(_c(encrypt_key), _c(encrypt_msg), s))
        if isinstance(out, int):
            raise ArchiveError(out, "DecryptData")
        # bytes that are no UTF-8 (a client's bad text) become U+FFFD: the message is kept, as
        # the import keeps one, rather than fail every pull with no seq named
        return out.decode("utf-8", errors="replace")

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._lib.DestroySdk(self._handle)
                self._handle = None
