#!/usr/bin/env python3
"""Build tiny stand-in libraries for the CUDA runtime libraries that a PyPI torch wheel links
against, so that the wheel, installed with `pip install --no-deps torch` (without the several GB
of nvidia-* / cuda-toolkit packages), imports and runs on a CPU-only machine.

The Linux x86_64 torch wheel is built with CUDA: libtorch_cpu.so, libtorch_cuda.so, ... list
libcudart.so.N, libcublas.so.N, libcudnn.so.N, ... as DT_NEEDED, so the dynamic loader refuses
to load torch at all when they are missing, even though CPU code never calls them. For every
such missing library this script compiles a stub with the same SONAME, the same symbol-version
node (NVIDIA's libraries version their symbols with the SONAME) and every symbol the torch
libraries import from it. Each stub function returns 100 (cudaErrorNoDevice /
CUDA_ERROR_NO_DEVICE, a plain failure code for the others), the ...ErrorString/...StatusString
ones return a static message, so `torch.cuda.is_available()` is False and nothing else changes.
The stubs go into torch/lib, which is on the RPATH ($ORIGIN) of torch's libraries.

Only used by scripts/setup_torch_venv.sh; needs readelf (binutils) and gcc.
Usage: make_cuda_stubs.py TORCH_LIB_DIR
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

NEVER_STUB = {"libcuda.so.1"}  # the driver: only dlopen'ed lazily; a fake one would mislead torch
STRING_RETURNING = re.compile(
    r"^(cuda|cudnn|cublas|cublasLt|cusparse|cufft|cusolver|nvrtc|nccl|cupti|nvshmem|cufile)\w*"
    r"(ErrorString|ErrorName|StatusString|StatusName)$|^ncclGetLastError$")
# Which stub gets an unversioned symbol (NVIDIA libs that do not version their symbols).
PREFIX_OWNER = [("nccl", "libnccl"), ("cusparseLt", "libcusparseLt"), ("cuFile", "libcufile"),
                ("cupti", "libcupti"), ("nvshmem", "libnvshmem")]


def run(args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", "-W", path]))


def verneed(path):
    """{file: set(version names)} from .gnu.version_r."""
    out, cur = {}, None
    for line in run(["readelf", "-V", "-W", path]).splitlines():
        m = re.search(r"Version: \d+\s+File: (\S+)", line)
        if m:
            cur = m.group(1)
            out.setdefault(cur, set())
            continue
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and cur:
            out[cur].add(m.group(1))
    return out


def dynsyms(path):
    """[(ndx, type, bind, name, version or None)] of the dynamic symbol table."""
    res = []
    for line in run(["readelf", "--dyn-syms", "-W", path]).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].endswith(":"):
            continue
        name = f[7]
        ver = None
        if "@" in name:
            name, _, ver = name.partition("@")
            ver = ver.lstrip("@")
        res.append((f[6], f[3], f[4], name, ver))
    return res


def resolvable(soname, libdir):
    if os.path.exists(os.path.join(libdir, soname)):
        return True
    try:
        return soname in run(["/sbin/ldconfig", "-p"])
    except (OSError, subprocess.CalledProcessError):
        return False


def main():
    libdir = os.path.abspath(sys.argv[1])
    libs = sorted(glob.glob(os.path.join(libdir, "*.so")))
    # Every symbol defined by torch's own libs, the interpreter and the system libraries it uses.
    defined = set()
    exe_libs = [sys.executable] + re.findall(r"=> (/\S+)", run(["ldd", sys.executable]))
    for path in libs + exe_libs:
        for ndx, _typ, _bind, name, _ver in dynsyms(path):
            if ndx != "UND":
                defined.add(name)
    for path in libs:
        for dep in needed(path):
            if dep.startswith(("libc.", "libm.", "libstdc++", "libgcc_s", "libpthread", "libdl", "librt", "ld-linux")):
                for ndx, _t, _b, name, _v in dynsyms(os.path.join("/lib/x86_64-linux-gnu", dep)) if os.path.exists(os.path.join("/lib/x86_64-linux-gnu", dep)) else []:
                    if ndx != "UND":
                        defined.add(name)

    stubs = {}  # soname -> {"versions": set, "syms": {name: (type, version)}}
    for path in libs:
        missing = [d for d in needed(path) if d not in NEVER_STUB and not resolvable(d, libdir)]
        if not missing:
            continue
        vn = verneed(path)
        ver_owner = {}
        for m in missing:
            st = stubs.setdefault(m, {"versions": set(), "syms": {}})
            for v in vn.get(m, ()):
                st["versions"].add(v)
                ver_owner[v] = m
        unversioned_targets = [m for m in missing if not vn.get(m)]
        for ndx, typ, bind, name, ver in dynsyms(path):
            if ndx != "UND" or not name or bind == "WEAK":
                continue
            if ver and ver in ver_owner:
                stubs[ver_owner[ver]]["syms"][name] = (typ, ver)
            elif not ver and name not in defined:
                owners = [m for p, lib in PREFIX_OWNER if name.startswith(p)
                          for m in missing if m.startswith(lib + ".")]
                for m in owners or unversioned_targets:
                    stubs[m]["syms"].setdefault(name, (typ, None))

    if not stubs:
        print("make_cuda_stubs: nothing missing")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for soname, st in sorted(stubs.items()):
            c = ['static const char stub_msg[] = "CUDA library stub: CUDA is not installed";']
            for name, (typ, _v) in sorted(st["syms"].items()):
                if typ == "OBJECT":
                    c.append(f"char {name}[256];")
                elif STRING_RETURNING.match(name):
                    c.append(f"const char *{name}(void) {{ return stub_msg; }}")
                else:
                    c.append(f"long {name}(void) {{ return 100; }}")
            src = os.path.join(tmp, soname + ".c")
            with open(src, "w") as fh:
                fh.write("\n".join(c) + "\n")
            cmd = ["gcc", "-shared", "-fPIC", "-O1", "-w", "-fno-builtin", f"-Wl,-soname,{soname}",
                   "-o", os.path.join(libdir, soname), src]
            if st["versions"]:
                vs = os.path.join(tmp, soname + ".map")
                versioned = sorted(n for n, (_t, v) in st["syms"].items() if v)
                plain = sorted(n for n, (_t, v) in st["syms"].items() if not v)
                with open(vs, "w") as fh:
                    for i, ver in enumerate(sorted(st["versions"])):
                        names = [n for n in versioned if st["syms"][n][1] == ver]
                        if i == 0:
                            names += plain
                        body = "".join(f" {n};" for n in names)
                        fh.write(f"{ver} {{ global:{body} }};\n" if names else f"{ver} {{ }};\n")
                cmd.insert(1, f"-Wl,--version-script={vs}")
            subprocess.run(cmd, check=True)
            print(f"make_cuda_stubs: {soname}: {len(st['syms'])} symbols, versions {sorted(st['versions']) or '-'}")


if __name__ == "__main__":
    main()
