"""exhook launcher for EMQX 4.1/4.2's emqx_extension_hook (python3 driver).

The plugin has no setting for a launch command: it can only start erlport's
Python.  This file, in the directory named by
exhook.drivers.python3.path, is imported by Python at start-up (site.py
imports `sitecustomize` from sys.path) before erlport reads a frame, and
replaces the interpreter (same pid, same pipes) with

    exhook-driver --config <this directory>/driver.conf [--nouse_stdio]

It does so only when the interpreter was started as erlport's port, i.e.
`python3 -u -m erlport.cli --packet=4 --use_stdio --compressed=0
--buffer_size=65536`.  Any other Python program that happens to run with
this directory on PYTHONPATH is left alone: nothing is printed and the next
`sitecustomize` on sys.path (Debian's /usr/lib/python3.X/sitecustomize.py,
which this file shadows) is loaded as if this one were not there.

What erlport does, read in its sources (github.com/emqx/erlport, tags
v1.1.1 for EMQX 4.1, v1.2.2 for 4.2, as pinned by the plugin's
rebar.config; the same code as github.com/erlport/erlport):
  - src/python_options.erl: finds the interpreter with
    os:find_executable("python3") on the broker's PATH, runs `<it> -V` and
    requires its first line to match ^Python X.Y.Z (erlport sets no
    PYTHONPATH for that check, and `-V` does not import site anyway: this
    file is never run there); PYTHONPATH = erlport's priv/python3, then the plugin's `path`,
    then the broker's own PYTHONPATH; port options
    [{env, [{"PYTHONPATH", ...}]}, {packet, 4}, binary, hide, exit_status]
    (nouse_stdio added with that option).
  - src/erlport_options.erl: the version check is
    open_port({spawn, Cmd}, [{line, 80}, stderr_to_stdout, hide]) and reads
    the first line only (stderr counts, so nothing may be written there).
  - src/python.erl: open_port({spawn, Python ++ " -u -m erlport.cli
    --packet=4 --use_stdio --compressed=0 --buffer_size=65536"}, ...).
  - priv/python3/erlport/cli.py: the options above, parsed with optparse.
The plugin (github.com/emqx/emqx-extension-hook, src/
emqx_extension_hook_driver.erl) calls python:start_link([{python,
"python3"} | Opts]) with a pool of one, then `init` on init_module:
{'C', Id, main, init, []} with the default.  No module `main` is needed:
the exec happens before any call, and exhook-driver answers init whatever
module it names, then gets its hooks called on the module its hook spec
names.

Exit status 1 and one `exhook-launch:` line on stderr whenever erlport's
port was recognised but exhook-driver cannot be started as asked: erlport's
own Python must never run in its place (no main.py is shipped either, so
even a Python that skipped this file would fail to load rather than serve).
"""
import sys


def _exhook_argv():
    """The interpreter's own command line: sys.orig_argv (Python 3.10+),
    else /proc/self/cmdline (Linux), else None."""
    argv = getattr(sys, 'orig_argv', None)
    if argv:
        return list(argv)
    try:
        with open('/proc/self/cmdline', 'rb') as f:
            raw = f.read()
    except OSError:
        return None
    parts = raw.split(b'\0')
    if parts and parts[-1] == b'':
        parts.pop()
    enc = sys.getfilesystemencoding()
    return [p.decode(enc, 'surrogateescape') for p in parts]


def _exhook_module_run(argv):
    """(module, its arguments) when argv ran `python -m MODULE ...`,
    else None (a script, -c, stdin, --version...).  CPython's options:
    flags may be grouped (-um) and -c/-m/-W/-X take the rest of the group
    or the next argument."""
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == '--check-hash-based-pycs':
            i += 2
            continue
        if a.startswith('--') or a == '-' or not a.startswith('-'):
            return None
        j = 1
        while j < len(a):
            c = a[j]
            if c in 'cmWX':
                if j + 1 < len(a):
                    value, nxt = a[j + 1:], i + 1
                elif i + 1 < len(argv):
                    value, nxt = argv[i + 1], i + 2
                else:
                    return None
                if c == 'c':
                    return None
                if c == 'm':
                    return value, argv[nxt:]
                i = nxt - 1
                break
            if c not in 'bBdEhiIOPqsSuvVx?R':
                return None
            j += 1
        i += 1
    return None


def _exhook_fail(why):
    """Refuse to start: one line on stderr, exit 1 at once (no fallback)."""
    import os
    try:
        sys.stderr.write('exhook-launch: %s; exiting 1 (erlport\'s Python driver is '
                         'not started either)\n' % why)
        sys.stderr.flush()
    finally:
        os._exit(1)


def _exhook_erlport_options(args):
    """erlport.cli's options (optparse; priv/python3/erlport/cli.py), as
    python.erl passes them: --packet=N, --use_stdio | --nouse_stdio,
    --compressed=N, --buffer_size=N (a value may also be the next
    argument; the last of a kind wins).  Returns (use_stdio, summary) or
    calls _exhook_fail for anything exhook-driver cannot honour."""
    opts = {'packet': 4, 'compressed': 0, 'buffer_size': 65536}
    use_stdio = True
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition('=')
        if a in ('--use_stdio', '--nouse_stdio'):
            use_stdio = a == '--use_stdio'
        elif name in ('--packet', '--compressed', '--buffer_size'):
            if not eq:
                if i + 1 >= len(args):
                    _exhook_fail('erlport option %s has no value' % name)
                i += 1
                value = args[i]
            try:
                opts[name[2:]] = int(value)
            except ValueError:
                _exhook_fail('erlport option %s=%s is not a number' % (name, value))
        else:
            _exhook_fail('unknown erlport.cli argument %r: this launcher only knows '
                         'the options erlport\'s python.erl passes (--packet, '
                         '--use_stdio/--nouse_stdio, --compressed, --buffer_size)' % a)
        i += 1
    if opts['packet'] != 4:
        _exhook_fail('erlport asked for --packet=%d, but exhook-driver reads and '
                     'writes only 4-byte length frames ({packet,4}, erlport\'s '
                     'default)' % opts['packet'])
    if not 0 <= opts['compressed'] <= 9:
        _exhook_fail('erlport option --compressed=%d is out of range (0..9)'
                     % opts['compressed'])
    if opts['buffer_size'] <= 0:
        _exhook_fail('erlport option --buffer_size=%d is not positive' % opts['buffer_size'])
    # --compressed=N: the broker may send zlib-compressed terms (131 80 ...),
    # which exhook-driver reads; it answers uncompressed, which erlport's
    # Erlang side (binary_to_term) accepts.  --buffer_size sizes the Python
    # reader's buffer: exhook-driver has its own.
    return use_stdio, ('--packet=%d --%s --compressed=%d --buffer_size=%d'
                       % (opts['packet'], 'use_stdio' if use_stdio else 'nouse_stdio',
                          opts['compressed'], opts['buffer_size']))


def _exhook_find_driver(here):
    """(path, how it was found): exhook-driver beside this file, else on
    PATH (absolute entries only), else /usr/local/bin, /usr/bin."""
    import os
    beside = os.path.join(here, 'exhook-driver')
    if os.path.lexists(beside):
        if os.path.isfile(beside) and os.access(beside, os.X_OK):
            if os.path.islink(beside):
                return beside, 'beside sitecustomize.py, -> %s' % os.path.realpath(beside)
            return beside, 'beside sitecustomize.py'
        # Present but broken: never fall back to some other binary.
        _exhook_fail('%s is there but is not an executable file (a dangling '
                     'symlink?)' % beside)
    for d in os.environ.get('PATH', '').split(os.pathsep):
        if not os.path.isabs(d):
            continue  # never from the broker's working directory
        p = os.path.join(d, 'exhook-driver')
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p, 'on PATH'
    for p in ('/usr/local/bin/exhook-driver', '/usr/bin/exhook-driver'):
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p, 'not beside sitecustomize.py nor on PATH; the default location'
    _exhook_fail('no exhook-driver: not in %s, not on PATH, not in /usr/local/bin '
                 'or /usr/bin' % here)


def _exhook_take_over(module_args):
    """erlport's port: exec exhook-driver, or exit 1.  Never returns."""
    import os
    import signal
    try:
        use_stdio, summary = _exhook_erlport_options(module_args)
        here = os.path.dirname(os.path.abspath(__file__))
        conf = os.path.join(here, 'driver.conf')
        if not os.path.isfile(conf):
            _exhook_fail('erlport started python3 as its port (-m erlport.cli) but there is '
                         'no %s: write it (see the README) before loading the plugin' % conf)
        if not os.access(conf, os.R_OK):
            _exhook_fail('erlport started python3 as its port (-m erlport.cli) but %s is '
                         'not readable by uid %d' % (conf, os.getuid()))
        driver, how = _exhook_find_driver(here)
        args = [driver, '--config', conf] + ([] if use_stdio else ['--nouse_stdio'])
        sys.stderr.write('exhook-launch: erlport\'s port (pid %d, -m erlport.cli %s): '
                         'exec %s (%s)\n' % (os.getpid(), summary, ' '.join(args), how))
        sys.stderr.flush()
        # Python set SIGPIPE and SIGXFSZ to ignored, which an exec keeps:
        # hand exhook-driver the defaults (it sets what it wants itself).
        for name in ('SIGPIPE', 'SIGXFSZ'):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.execv(driver, args)
    except BaseException as e:  # anything at all: never let site.py carry on
        _exhook_fail('cannot start exhook-driver: %s: %s' % (type(e).__name__, e))
    _exhook_fail('os.execv returned')


def _exhook_chain():
    """Load the next `sitecustomize` on sys.path after this file's
    directory (Debian's, for instance), in place of this one."""
    import os
    import importlib.machinery
    import importlib.util
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    entries = sys.path
    for k, entry in enumerate(entries):
        if os.path.realpath(os.path.abspath(entry or os.curdir)) == here:
            entries = entries[k + 1:]
            break
    entries = [e for e in entries if os.path.realpath(os.path.abspath(e or os.curdir)) != here]
    spec = importlib.machinery.PathFinder.find_spec('sitecustomize', entries)
    if spec is None or spec.loader is None:
        return
    mod = importlib.util.module_from_spec(spec)
    sys.modules['sitecustomize'] = mod  # what `import sitecustomize` returns
    spec.loader.exec_module(mod)


def _exhook_main():
    argv = _exhook_argv()
    if argv:
        run = _exhook_module_run(argv)
        if run is not None and run[0] == 'erlport.cli':
            _exhook_take_over(run[1])
    elif sys.argv[:1] == ['-m'] and any(a.startswith('--packet') for a in sys.argv[1:]) \
            and any(a in ('--use_stdio', '--nouse_stdio') for a in sys.argv[1:]):
        # No sys.orig_argv (Python < 3.10) and no /proc: during start-up
        # sys.argv is ['-m', <the module's arguments>], the module name
        # not yet known; erlport's own options identify its port.
        _exhook_take_over(sys.argv[1:])
    _exhook_chain()


_exhook_main()
