"""Reading the saved container environment: what cron jobs and anything else inside use.

richinit.environ writes /run/richinit/environment (`export NAME='value'` lines) at boot; this
module reads it back with no heavy imports (no shlex, re or json), so the built-in cron, which
runs in every rich container, stays small.
"""

import os

RUN_FILE = "run/richinit/environment"  # relative to the container's root

def _shell_words(text):
    """shlex.split(text, comments=True, posix=True), by hand (shlex costs re, io, collections).

    Raises ValueError as shlex does: "No closing quotation", "No escaped character".
    """
    words, word, in_word, i, n = [], [], False, 0, len(text)  # in_word: a word started, maybe ''
    while i < n:
        c = text[i]
        i += 1
        if c in " \t\r\n":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif c == "#":  # a comment, even in the middle of a word (shlex's rule)
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif c == "\\":
            if i >= n:
                raise ValueError("No escaped character")
            word.append(text[i])
            i += 1
            in_word = True
        elif c == "'":
            end = text.find("'", i)
            if end < 0:
                raise ValueError("No closing quotation")
            word.append(text[i:end])
            i, in_word = end + 1, True
        elif c == '"':
            while True:
                if i >= n:
                    raise ValueError("No closing quotation")
                c = text[i]
                i += 1
                if c == '"':
                    break
                if c == "\\":
                    if i >= n:
                        raise ValueError("No escaped character")
                    if text[i] not in '"\\':
                        word.append("\\")
                    c = text[i]
                    i += 1
                word.append(c)
            in_word = True
        else:
            word.append(c)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")


def _shell_name(name):
    if name.endswith("\n"):  # environ's `^...$` pattern lets one trailing newline through
        name = name[:-1]
    return bool(name) and name[0] in _NAME_START and all(c in _NAME_CHARS for c in name)


def load(path):
    """The saved environment file (`export NAME='value'` words) as a dict.

    {} if the file does not exist; ValueError on anything that is not NAME=value.
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    env = {}
    for w in _shell_words(text):
        if w == "export":
            continue
        name, eq, value = w.partition("=")
        if not eq or not _shell_name(name):
            raise ValueError("not NAME=value: %r" % w[:60])
        env[name] = value
    return env


def readable_by(path, uid, gids):
    """Would `uid` (with groups `gids`) be allowed to read `path`? Root always is."""
    if uid == 0:
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_uid == uid:
        return bool(st.st_mode & 0o400)
    if st.st_gid in gids:
        return bool(st.st_mode & 0o040)
    return bool(st.st_mode & 0o004)
