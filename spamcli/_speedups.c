/* spamcli._speedups: C versions of the hot paths of spamcli.text.
 *
 * The pure-Python functions of spamcli/text.py (_normalise_py, _tokenise_py, Vectoriser._columns_py)
 * are the reference: every function here returns exactly what they return (tests/test_speedups.py
 * compares both on the shared datasets, hand-written cases and a random fuzz).
 *
 *   normalise(text) -> str
 *       spamcli.text.normalise. The rare, hard passes call back into Python (set by configure()):
 *       NFKC of a text with a character that cannot be normalised on its own, html.unescape (only
 *       with "&"), href/tag stripping (only with "<"), e-mail and URL markers (only on the
 *       whitespace-separated chunks where a match is possible), phone markers (only when a digit run
 *       can match), str.lower() (only when a non-ASCII character changes case). Everything else is
 *       done here: NFKC character by character, invisible characters, caps detection, number and
 *       emoji markers, the repeat collapse, ASCII lower-casing, whitespace collapse and strip.
 *   tokenise(normalised) -> list[str]
 *       spamcli.text.tokenise: the _TOKEN_RE findall and the bigrams of no-space scripts.
 *   columns(normalised, n_features, word_ngrams, char_lo, char_hi, binary) -> (list[int], list[float] | None)
 *       Vectoriser._columns of a text whose normalise() is `normalised`: CRC-32 of the UTF-8 of
 *       "w:tok", "c:<n-gram of ' tok '>", "b:a b" modulo n_features, deduplicated in first-seen
 *       order (binary, values None) or counted. char_lo = char_hi = 0: no character n-grams.
 *   rows(texts, max_chars, n_features, word_ngrams, char_lo, char_hi, binary, cache, cache_limit,
 *        cache_max_chars) -> (indptr, indices, data | None)
 *       Vectoriser.transform: normalise(text[:max_chars]) and columns() of each text, as bytearrays
 *       of int64 row offsets, int32 columns and float32 values (None: binary, all 1.0). `cache` (a
 *       dict or None) maps a text of at most cache_max_chars characters to its packed row (bytes:
 *       uint32 columns, then float32 values unless binary); it is emptied when it holds cache_limit.
 *   configure(nfkc, nfkc_char, unescape, tags, emails, urls, phones, tlds, invisible, emoji, word_marks,
 *             nospace, symbols)
 *       Called once per module object, by spamcli.text at import, before any of the above. The
 *       Python callbacks: nfkc("NFKC", text) (unicodedata.normalize), nfkc_char(code point) ->
 *       (its NFKC, combining class of its first and last character) when a text can be normalised
 *       character by character around it (see nfkc_state), else None; the others f(text) -> text.
 *       And spamcli.text's tables, their one source: tlds (lower-case ASCII labels) and the
 *       character classes as (lo, hi) code point ranges.
 *
 * The module uses multi-phase initialisation (PEP 489): what configure() sets is the state of the
 * module object (State), so each module object is configured on its own. The C statics left are
 * caches of fixed data (CRC table, Unicode properties of code points).
 * Character classes follow Python's `re` on str: \w is Py_UNICODE_ISALNUM(ch) || ch == '_', \s is
 * Py_UNICODE_ISSPACE, \d is Py_UNICODE_ISDECIMAL. Lengths and n-grams are in code points.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MARK_OPEN 0x27E8  /* ⟨ */
#define MARK_CLOSE 0x27E9 /* ⟩ */
#define CAPS_SAMPLE 500
#define MARKER_MAX 80

/* ---- CRC-32 (IEEE 802.3, reflected, as zlib.crc32) ---------------------------------------- */

static uint32_t crc_table[256];

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* The register before finalisation: start at 0xFFFFFFFF, the CRC is register ^ 0xFFFFFFFF. */
static inline uint32_t
crc_feed(uint32_t r, const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        r = crc_table[(r ^ p[i]) & 0xFF] ^ (r >> 8);
    return r;
}

static inline uint32_t
crc_byte(uint32_t r, unsigned char b)
{
    return crc_table[(r ^ b) & 0xFF] ^ (r >> 8);
}

/* ---- character classes -------------------------------------------------------------------- */

#define CF_KNOWN 1
#define CF_SPACE 2    /* \s, str.isspace */
#define CF_DECIMAL 4  /* \d, str.isdecimal */
#define CF_ALPHA 8    /* str.isalpha */
#define CF_UPPER 16   /* str.isupper of one character */
#define CF_REWORD 32  /* \w */
#define CF_LOWERS 64  /* lower() changes it */

/* Flags of the BMP, filled in on first use. They are Python's Unicode database, the same in every
 * module object and interpreter, so these caches are process-wide (the same values each time: no
 * lock needed); what configure() sets lives in the module state (State, below). */
static uint8_t bmp_flags[65536];

static uint8_t
compute_flags(Py_UCS4 c)
{
    uint8_t f = CF_KNOWN;
    int alnum = Py_UNICODE_ISALNUM(c);
    if (Py_UNICODE_ISSPACE(c))
        f |= CF_SPACE;
    if (Py_UNICODE_ISDECIMAL(c))
        f |= CF_DECIMAL;
    if (Py_UNICODE_ISALPHA(c))
        f |= CF_ALPHA;
    if (Py_UNICODE_ISUPPER(c))
        f |= CF_UPPER;
    if (alnum || c == '_')
        f |= CF_REWORD;
    if (Py_UNICODE_TOLOWER(c) != c)
        f |= CF_LOWERS;
    return f;
}

/* Astral code points (emoji, mathematical letters, ...): small direct-mapped caches of their flags
 * (here) and NFKC state (State.nfkc_astral, see nfkc_state); c = 0 marks an empty slot. */
#define ASTRAL_SLOTS 1024
static struct {
    Py_UCS4 c;
    uint8_t flags;
} astral_flags[ASTRAL_SLOTS];

static inline uint8_t
cflags(Py_UCS4 c)
{
    if (c < 0x10000) {
        uint8_t f = bmp_flags[c];
        if (!f)
            f = bmp_flags[c] = compute_flags(c);
        return f;
    }
    int k = (int)(c & (ASTRAL_SLOTS - 1));
    if (astral_flags[k].c != c) {
        astral_flags[k].c = c;
        astral_flags[k].flags = compute_flags(c);
    }
    return astral_flags[k].flags;
}

/* ---- module state: what configure() sets -------------------------------------------------- */

/* The character classes of spamcli/text.py's tables, as bits of State.cls_bmp / State.astral */
#define CL_INVISIBLE 1 /* _INVISIBLE_CHARS (_INVISIBLE_RE) */
#define CL_EMOJI 2     /* _EMOJI_CHARS (_EMOJI_RE) */
#define CL_WORDMARK 4  /* _WORD_MARKS: the marks _WORD adds to \w */
#define CL_NOSPACE 8   /* _NOSPACE_CHARS (_NOSPACE_RE) */
#define CL_SYMBOL 16   /* _SYMBOL_CHARS: the symbols of _TOKEN_RE */
#define N_CLASSES 5

/* The Python callbacks, in configure()'s order */
enum { H_NFKC, H_NFKC_CHAR, H_UNESCAPE, H_TAGS, H_EMAILS, H_URLS, H_PHONES, N_HOOKS };

typedef struct {
    Py_UCS4 lo, hi;
    uint8_t cls;
} Range;

typedef struct {
    int configured;
    PyObject *hooks[N_HOOKS];
    PyObject *str_nfkc, *str_lower, *str_caps, *str_space_caps;
    PyObject *nfkc_info;    /* int -> (nfkc: str, first ccc, last ccc) or None: nfkc_char()'s answers */
    const char **tlds;      /* _TLDS, lower-case ASCII, NULL-terminated (one PyMem block with the text) */
    Range *astral;          /* the class ranges above U+FFFF */
    Py_ssize_t n_astral;
    uint8_t cls_bmp[65536]; /* CL_* of each code point below U+10000 */
    /* NFKC state of a code point (see nfkc_state): 0 not asked yet, 1 unchanged, 2 replaced, 3 the
     * whole text goes to Python; with the combining class of the first and last character of its NFKC */
    uint8_t nfkc_bmp[65536];
    uint8_t nfkc_bmp_ccc[65536][2];
    struct {
        Py_UCS4 c;
        uint8_t nfkc, ccc_first, ccc_last;
    } nfkc_astral[ASTRAL_SLOTS];
} State;

static inline State *
get_state(PyObject *module)
{
    return (State *)PyModule_GetState(module);
}

static inline uint8_t
char_class(const State *st, Py_UCS4 c)
{
    if (c < 0x10000)
        return st->cls_bmp[c];
    uint8_t f = 0;
    for (Py_ssize_t k = 0; k < st->n_astral; k++) {
        if (c >= st->astral[k].lo && c <= st->astral[k].hi)
            f |= st->astral[k].cls;
    }
    return f;
}

static inline int
is_space(Py_UCS4 c)
{
    return c < 128 ? (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) : (cflags(c) & CF_SPACE);
}

static inline int
is_decimal(Py_UCS4 c)
{
    return c < 128 ? (c >= '0' && c <= '9') : (cflags(c) & CF_DECIMAL);
}

/* The configured classes but CL_SYMBOL hold no ASCII (configure() checks) */
static inline int
is_nospace(const State *st, Py_UCS4 c)
{
    return c >= 128 && (char_class(st, c) & CL_NOSPACE);
}

static inline int
is_symbol(const State *st, Py_UCS4 c)
{
    return (char_class(st, c) & CL_SYMBOL) != 0;
}

static inline int
is_emoji(const State *st, Py_UCS4 c)
{
    return c >= 128 && (char_class(st, c) & CL_EMOJI);
}

static inline int
is_invisible(const State *st, Py_UCS4 c)
{
    return c >= 128 && (char_class(st, c) & CL_INVISIBLE);
}

/* ---- buffers ------------------------------------------------------------------------------ */

/* Make room for `need` elements of `elem` bytes in *p (capacity *cap); -1 (MemoryError) on failure. */
static int
reserve(void *pp, Py_ssize_t *cap, Py_ssize_t need, size_t elem)
{
    void **p = (void **)pp;
    if (need <= *cap)
        return 0;
    Py_ssize_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *np = PyMem_Realloc(*p, (size_t)c * elem);
    if (!np) {
        PyErr_NoMemory();
        return -1;
    }
    *p = np;
    *cap = c;
    return 0;
}

typedef struct {
    Py_UCS4 *buf;
    Py_ssize_t len, cap;
} UBuf;

static inline int
ubuf_reserve(UBuf *b, Py_ssize_t extra)
{
    return reserve(&b->buf, &b->cap, b->len + extra, sizeof(Py_UCS4));
}

/* ---- the Python callbacks ----------------------------------------------------------------- */

/* NFKC character by character. Let the "charwise" text be the concatenation of the NFKC of each
 * character. It has the NFKD of the text (NFKD(NFKC(c)) = NFKD(c), and canonical reordering is a
 * stable sort), so the NFKC of the text is the NFKC of the charwise text, which is the charwise text
 * itself when it passes the NFKC quick check: every character NFKC_QC=Yes and no combining class
 * lower than the non-zero one before it. The characters of an NFKC are never NFKC_QC=No; nfkc_char()
 * in spamcli/text.py rules out the ones that may be Maybe (the second character of a canonical
 * composition; tests/test_speedups.py checks every composition) and gives the combining classes of
 * the first and last character, which nfkc_step() checks across characters. Otherwise the whole
 * text goes to unicodedata.normalize. States of a code point: see State.nfkc_bmp.
 * The state (1, 2, 3) of c >= 128 with the combining classes of its NFKC and, if repl is not NULL
 * and the state is 2, the NFKC itself (borrowed from st->nfkc_info); -1 on error. */
static int
nfkc_state(State *st, Py_UCS4 c, int *first, int *last, PyObject **repl)
{
    int k = (int)(c & (ASTRAL_SLOTS - 1));
    if (c < 0x10000) {
        int known = st->nfkc_bmp[c];
        if (known == 1 || known == 3 || (known == 2 && !repl)) {
            *first = st->nfkc_bmp_ccc[c][0];
            *last = st->nfkc_bmp_ccc[c][1];
            return known;
        }
    }
    else if (st->nfkc_astral[k].c == c) {
        int known = st->nfkc_astral[k].nfkc;
        if (known == 1 || known == 3 || (known == 2 && !repl)) {
            *first = st->nfkc_astral[k].ccc_first;
            *last = st->nfkc_astral[k].ccc_last;
            return known;
        }
    }
    PyObject *key = PyLong_FromUnsignedLong(c);
    if (!key)
        return -1;
    PyObject *value = PyDict_GetItemWithError(st->nfkc_info, key); /* borrowed */
    if (!value) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        value = PyObject_CallOneArg(st->hooks[H_NFKC_CHAR], key);
        if (!value) {
            Py_DECREF(key);
            return -1;
        }
        if (value != Py_None &&
            !(PyTuple_Check(value) && PyTuple_GET_SIZE(value) == 3 && PyUnicode_Check(PyTuple_GET_ITEM(value, 0)) &&
              PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(value, 0)) > 0 && PyLong_Check(PyTuple_GET_ITEM(value, 1)) &&
              PyLong_Check(PyTuple_GET_ITEM(value, 2)))) {
            PyErr_SetString(PyExc_TypeError, "nfkc_char() must return (str, int, int) or None");
            Py_DECREF(value);
            Py_DECREF(key);
            return -1;
        }
        int failed = PyDict_SetItem(st->nfkc_info, key, value);
        Py_DECREF(value); /* the dict holds it */
        if (failed) {
            Py_DECREF(key);
            return -1;
        }
    }
    Py_DECREF(key);
    int known;
    if (value == Py_None) {
        known = 3;
        *first = *last = 0;
    }
    else {
        PyObject *out = PyTuple_GET_ITEM(value, 0);
        long f = PyLong_AsLong(PyTuple_GET_ITEM(value, 1)), l = PyLong_AsLong(PyTuple_GET_ITEM(value, 2));
        if (f < 0 || f > 255 || l < 0 || l > 255) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "nfkc_char(): combining classes are 0..255");
            return -1;
        }
        *first = (int)f;
        *last = (int)l;
        known = (PyUnicode_GET_LENGTH(out) == 1 && PyUnicode_READ_CHAR(out, 0) == c) ? 1 : 2;
        if (repl)
            *repl = out;
    }
    if (c < 0x10000) {
        st->nfkc_bmp_ccc[c][0] = (uint8_t)*first;
        st->nfkc_bmp_ccc[c][1] = (uint8_t)*last;
        st->nfkc_bmp[c] = (uint8_t)known;
    }
    else {
        st->nfkc_astral[k].c = c;
        st->nfkc_astral[k].ccc_first = (uint8_t)*first;
        st->nfkc_astral[k].ccc_last = (uint8_t)*last;
        st->nfkc_astral[k].nfkc = (uint8_t)known;
    }
    return known;
}

/* Replace *s by hook(*s) (or hook("NFKC", *s)); -1 on error (*s is then released and NULL). */
static int
apply_hook(const State *st, int hook, PyObject **s)
{
    PyObject *f = st->hooks[hook];
    PyObject *r = hook == H_NFKC ? PyObject_CallFunctionObjArgs(f, st->str_nfkc, *s, NULL) : PyObject_CallOneArg(f, *s);
    Py_DECREF(*s);
    *s = r;
    if (!r)
        return -1;
    if (!PyUnicode_Check(r)) {
        PyErr_Format(PyExc_TypeError, "a normalise hook returned %.100s, not str", Py_TYPE(r)->tp_name);
        Py_CLEAR(*s);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(r) < 0) {
        Py_CLEAR(*s);
        return -1;
    }
#endif
    return 0;
}

/* unicodedata.normalize("NFKC", *s) for a non-ASCII text; -1 on error (*s released). */
static int
nfkc_step(State *st, PyObject **s)
{
    PyObject *text = *s, *repl = NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int replace = 0, prev = 0, first, last;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128) {
            prev = 0;
            continue;
        }
        int known = nfkc_state(st, c, &first, &last, NULL);
        if (known < 0) {
            Py_CLEAR(*s);
            return -1;
        }
        if (known == 3 || (first && prev > first))
            return apply_hook(st, H_NFKC, s);
        prev = last;
        replace |= known == 2;
    }
    if (!replace)
        return 0;
    UBuf o = {NULL, 0, 0};
    if (ubuf_reserve(&o, n + 16) < 0)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        int known = c < 128 ? 1 : nfkc_state(st, c, &first, &last, &repl);
        if (known < 0)
            goto error;
        if (known == 1) {
            if (ubuf_reserve(&o, 1) < 0)
                goto error;
            o.buf[o.len++] = c;
            continue;
        }
        Py_ssize_t m = PyUnicode_GET_LENGTH(repl);
        if (ubuf_reserve(&o, m) < 0)
            goto error;
        for (Py_ssize_t k = 0; k < m; k++)
            o.buf[o.len++] = PyUnicode_READ_CHAR(repl, k);
    }
    PyObject *r = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, o.buf, o.len);
    PyMem_Free(o.buf);
    Py_DECREF(*s);
    *s = r;
    return r ? 0 : -1;
error:
    PyMem_Free(o.buf);
    Py_CLEAR(*s);
    return -1;
}

/* _INVISIBLE_RE.sub("", *s); -1 on error (*s released). */
static int
drop_invisible(const State *st, PyObject **s)
{
    PyObject *text = *s;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), first = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_invisible(st, PyUnicode_READ(kind, data, i))) {
            first = i;
            break;
        }
    }
    if (first < 0)
        return 0;
    Py_UCS4 *buf = PyMem_Malloc((size_t)n * sizeof(Py_UCS4));
    if (!buf) {
        PyErr_NoMemory();
        Py_CLEAR(*s);
        return -1;
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!is_invisible(st, c))
            buf[m++] = c;
    }
    PyObject *r = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, m);
    PyMem_Free(buf);
    Py_DECREF(text);
    *s = r;
    return r ? 0 : -1;
}

static inline int
has_char(PyObject *s, Py_UCS4 ch)
{
    return PyUnicode_FindChar(s, ch, 0, PyUnicode_GET_LENGTH(s), 1) >= 0;
}

/* ⟨caps⟩: at least 12 letters in the first 500 characters, more than 60% of them upper-case. */
static int
is_shouting(PyObject *s)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n > CAPS_SAMPLE)
        n = CAPS_SAMPLE;
    long letters = 0, upper = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128) {
            letters += ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
            upper += (c >= 'A' && c <= 'Z');
        }
        else {
            uint8_t f = cflags(c);
            letters += (f & CF_ALPHA) != 0;
            upper += (f & CF_UPPER) != 0;
        }
    }
    return letters >= 12 && (double)upper / (double)letters > 0.6;
}

/* ---- e-mail, URL and phone passes: where can they match? ---------------------------------- */

/* The ASCII letter a character matches with re.IGNORECASE (Python's `re` on str also matches KELVIN
 * SIGN to k, LONG S to s, dotted and dotless I to i), else 0. */
static inline Py_UCS4
fold_ascii(Py_UCS4 c)
{
    if (c < 128)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    switch (c) {
    case 0x0130: case 0x0131: return 'i';
    case 0x017F: return 's';
    case 0x212A: return 'k';
    default: return 0;
    }
}

/* Whether _URL_HINT_RE (\.(?:_TLDS)\b|https?://|www\., ignoring case) or more may match at the "."
 * or ":" at p: "://", "www." or "." + a TLD of st->tlds + a word boundary. The Python hook checks its
 * exact hint again, so this only has to say yes whenever the hint matches. */
static int
url_hint_at(const State *st, int kind, const void *data, Py_ssize_t p, Py_ssize_t n)
{
    Py_UCS4 c = PyUnicode_READ(kind, data, p);
    if (c == ':')
        return p + 2 < n && PyUnicode_READ(kind, data, p + 1) == '/' && PyUnicode_READ(kind, data, p + 2) == '/';
    if (p >= 3 && fold_ascii(PyUnicode_READ(kind, data, p - 3)) == 'w' &&
        fold_ascii(PyUnicode_READ(kind, data, p - 2)) == 'w' && fold_ascii(PyUnicode_READ(kind, data, p - 1)) == 'w')
        return 1;
    if (p + 1 >= n)
        return 0;
    Py_UCS4 f = fold_ascii(PyUnicode_READ(kind, data, p + 1));
    if (!f)
        return 0;
    for (const char *const *t = st->tlds; *t; t++) {
        if ((Py_UCS4)(unsigned char)(*t)[0] != f)
            continue;
        Py_ssize_t m = (Py_ssize_t)strlen(*t), k;
        if (p + 1 + m > n)
            continue;
        for (k = 1; k < m; k++) {
            if (fold_ascii(PyUnicode_READ(kind, data, p + 1 + k)) != (Py_UCS4)(unsigned char)(*t)[k])
                break;
        }
        if (k < m)
            continue;
        if (p + 1 + m == n)
            return 1;
        Py_UCS4 next = PyUnicode_READ(kind, data, p + 1 + m);
        if (!(next < 128 ? (next == '_' || Py_ISALNUM(next)) : (cflags(next) & CF_REWORD)))
            return 1;
    }
    return 0;
}

typedef Py_ssize_t (*hint_finder)(const State *st, int kind, const void *data, Py_ssize_t from, Py_ssize_t n);

static Py_ssize_t
find_url_hint(const State *st, int kind, const void *data, Py_ssize_t from, Py_ssize_t n)
{
    for (Py_ssize_t p = from; p < n; p++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, p);
        if ((c == '.' || c == ':') && url_hint_at(st, kind, data, p, n))
            return p;
    }
    return -1;
}

static Py_ssize_t
find_at_sign(const State *st, int kind, const void *data, Py_ssize_t from, Py_ssize_t n)
{
    (void)st;
    for (Py_ssize_t p = from; p < n; p++) {
        if (PyUnicode_READ(kind, data, p) == '@')
            return p;
    }
    return -1;
}

/* hook applied to each maximal run of non-whitespace characters of *s that holds a place found by
 * find(). The same as hook(*s) for the e-mail and URL passes: their matches hold no whitespace (and
 * contain such a place), and their look-behind and \b see a whitespace neighbour as they see the
 * start or end of the text. -1 on error (*s released). */
static int
apply_chunked(const State *st, int hook, PyObject **s, hint_finder find)
{
    PyObject *text = *s, *pieces = NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), copied = 0, i = 0;
    while (i < n) {
        Py_ssize_t p = find(st, kind, data, i, n);
        if (p < 0)
            break;
        Py_ssize_t a = p, b = p + 1;
        while (a > i && !is_space(PyUnicode_READ(kind, data, a - 1)))
            a--;
        while (b < n && !is_space(PyUnicode_READ(kind, data, b)))
            b++;
        i = b;
        PyObject *orig = PyUnicode_Substring(text, a, b);
        if (!orig)
            goto error;
        PyObject *chunk = PyObject_CallOneArg(st->hooks[hook], orig);
        if (chunk && !PyUnicode_Check(chunk)) {
            PyErr_Format(PyExc_TypeError, "a normalise hook returned %.100s, not str", Py_TYPE(chunk)->tp_name);
            Py_CLEAR(chunk);
        }
        if (!chunk) {
            Py_DECREF(orig);
            goto error;
        }
        int same = chunk == orig || PyUnicode_Compare(chunk, orig) == 0;
        Py_DECREF(orig);
        if (same) {
            Py_DECREF(chunk);
            continue;
        }
        if (!pieces && !(pieces = PyList_New(0))) {
            Py_DECREF(chunk);
            goto error;
        }
        PyObject *before = PyUnicode_Substring(text, copied, a);
        if (!before || PyList_Append(pieces, before) < 0 || PyList_Append(pieces, chunk) < 0) {
            Py_XDECREF(before);
            Py_DECREF(chunk);
            goto error;
        }
        Py_DECREF(before);
        Py_DECREF(chunk);
        copied = b;
    }
    if (!pieces)
        return 0;
    PyObject *rest = PyUnicode_Substring(text, copied, n);
    if (!rest || PyList_Append(pieces, rest) < 0) {
        Py_XDECREF(rest);
        goto error;
    }
    Py_DECREF(rest);
    PyObject *empty = PyUnicode_New(0, 0);
    PyObject *joined = empty ? PyUnicode_Join(empty, pieces) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(pieces);
    Py_DECREF(text);
    *s = joined;
    return joined ? 0 : -1;
error:
    Py_XDECREF(pieces);
    Py_CLEAR(*s);
    return -1;
}

/* _PHONE_HINT_RE.search(s) (\d[\d\s().-]{6,}\d), exactly: two digits at least 7 apart with only
 * digits, whitespace and ().- between them. */
static int
phone_hint(PyObject *s)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), first = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (is_decimal(c)) {
            if (first < 0)
                first = i;
            else if (i - first >= 7)
                return 1;
        }
        else if (!(c == '(' || c == ')' || c == '.' || c == '-' || is_space(c))) {
            first = -1;
        }
    }
    return 0;
}

/* ---- normalise ---------------------------------------------------------------------------- */

/* Append a marker "⟨name⟩" surrounded by (collapsed) spaces. */
static int
put_marker(UBuf *o, const char *name)
{
    if (ubuf_reserve(o, (Py_ssize_t)strlen(name) + 4) < 0)
        return -1;
    if (o->len && o->buf[o->len - 1] != ' ')
        o->buf[o->len++] = ' ';
    o->buf[o->len++] = MARK_OPEN;
    for (const char *p = name; *p; p++)
        o->buf[o->len++] = (Py_UCS4)(unsigned char)*p;
    o->buf[o->len++] = MARK_CLOSE;
    o->buf[o->len++] = ' ';
    return 0;
}

/* The passes after the phone markers, in one scan: number markers (\d+(?:[.,]\d+)*), emoji markers,
 * (.)\1{2,} -> \1\1, lower(), " ⟨caps⟩", whitespace collapse and strip. Whitespace is collapsed
 * before lower() here, which gives the same text: no character lower-cases to or from whitespace, and
 * whitespace is neither cased nor case-ignorable (the final-sigma rule of str.lower); a run of one
 * repeated character never holds whitespace once whitespace is collapsed, nor a marker (markers are
 * surrounded by spaces).
 * The result is o->buf[:o->len] with *str_out NULL, or *str_out (a new str) when str.lower() had to
 * be called (a non-ASCII character that changes case). *maxc: the largest code point of o->buf. */
static int
final_pass(const State *st, PyObject *s, int shouting, UBuf *o, PyObject **str_out, Py_UCS4 *maxc_out)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    Py_UCS4 run_c = 0, maxc = 0;
    int run_n = 0, call_lower = 0;

    o->len = 0;
    *str_out = NULL;
    if (ubuf_reserve(o, n + 16) < 0)
        return -1;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        uint8_t f = 0;
        if (c >= 128) {
            if (is_emoji(st, c)) {
                if (put_marker(o, "emoji") < 0)
                    return -1;
                maxc = MARK_CLOSE > maxc ? MARK_CLOSE : maxc;
                run_n = 0;
                i++;
                continue;
            }
            f = cflags(c);
        }
        if (c < 128 ? (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) : (f & CF_SPACE)) {
            if (o->len && o->buf[o->len - 1] != ' ') {
                if (ubuf_reserve(o, 1) < 0)
                    return -1;
                o->buf[o->len++] = ' ';
            }
            run_n = 0;
            i++;
            continue;
        }
        if (c < 128 ? (c >= '0' && c <= '9') : (f & CF_DECIMAL)) {
            Py_ssize_t j = i + 1;
            long digits = 1;
            for (;;) {
                while (j < n && is_decimal(PyUnicode_READ(kind, data, j))) {
                    j++;
                    digits++;
                }
                if (j + 1 < n) {
                    Py_UCS4 sep = PyUnicode_READ(kind, data, j);
                    if ((sep == '.' || sep == ',') && is_decimal(PyUnicode_READ(kind, data, j + 1))) {
                        j++;
                        continue;
                    }
                }
                break;
            }
            char name[5] = {'n', 'u', 'm', (char)('0' + (digits < 5 ? digits : 5)), 0};
            if (put_marker(o, name) < 0)
                return -1;
            maxc = MARK_CLOSE > maxc ? MARK_CLOSE : maxc;
            run_n = 0;
            i = j;
            continue;
        }
        i++;
        if (run_n && c == run_c) {
            if (run_n >= 2)
                continue; /* the third and later of a run */
            run_n++;
        }
        else {
            run_c = c;
            run_n = 1;
        }
        if (ubuf_reserve(o, 1) < 0)
            return -1;
        o->buf[o->len++] = c;
        if (c >= 128) {
            if (c > maxc)
                maxc = c;
            if (f & CF_LOWERS)
                call_lower = 1;
        }
    }
    if (o->len && o->buf[o->len - 1] == ' ')
        o->len--;

    if (call_lower) {
        PyObject *t = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, o->buf, o->len);
        if (!t)
            return -1;
        PyObject *low = PyObject_CallMethodNoArgs(t, st->str_lower);
        Py_DECREF(t);
        if (!low)
            return -1;
        if (shouting) {
            PyObject *r = PyUnicode_Concat(low, PyUnicode_GET_LENGTH(low) ? st->str_space_caps : st->str_caps);
            Py_DECREF(low);
            if (!r)
                return -1;
            low = r;
        }
        *str_out = low;
        return 0;
    }
    for (Py_ssize_t k = 0; k < o->len; k++) {
        if (o->buf[k] >= 'A' && o->buf[k] <= 'Z')
            o->buf[k] += 32;
    }
    if (shouting) {
        static const Py_UCS4 caps[] = {' ', MARK_OPEN, 'c', 'a', 'p', 's', MARK_CLOSE};
        Py_ssize_t skip = o->len ? 0 : 1;
        if (ubuf_reserve(o, 7) < 0)
            return -1;
        memcpy(o->buf + o->len, caps + skip, (size_t)(7 - skip) * sizeof(Py_UCS4));
        o->len += 7 - skip;
        maxc = MARK_CLOSE > maxc ? MARK_CLOSE : maxc;
    }
    *maxc_out = maxc;
    return 0;
}

static int
is_configured(const State *st)
{
    if (!st->configured) {
        PyErr_SetString(PyExc_RuntimeError, "spamcli._speedups.configure() has not been called");
        return 0;
    }
    return 1;
}

/* normalise(text) into o / *str_out / *maxc as final_pass() says; -1 on error. */
static int
normalise_core(State *st, PyObject *text, UBuf *o, PyObject **str_out, Py_UCS4 *maxc)
{
    PyObject *s = text;
    Py_INCREF(s);
    if (!PyUnicode_IS_ASCII(s) && (nfkc_step(st, &s) < 0 || drop_invisible(st, &s) < 0))
        return -1;
    if (has_char(s, '&') && apply_hook(st, H_UNESCAPE, &s) < 0)
        return -1;
    if (has_char(s, '<') && apply_hook(st, H_TAGS, &s) < 0)
        return -1;
    int shouting = is_shouting(s);
    if (apply_chunked(st, H_EMAILS, &s, find_at_sign) < 0)
        return -1;
    if (apply_chunked(st, H_URLS, &s, find_url_hint) < 0)
        return -1;
    if (phone_hint(s) && apply_hook(st, H_PHONES, &s) < 0)
        return -1;
    int r = final_pass(st, s, shouting, o, str_out, maxc);
    Py_DECREF(s);
    return r;
}

static int
check_str(PyObject *s, const char *fn)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s() expects str, not %.100s", fn, Py_TYPE(s)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    return 0;
}

static PyObject *
sp_normalise(PyObject *module, PyObject *text)
{
    State *st = get_state(module);
    if (check_str(text, "normalise") < 0 || !is_configured(st))
        return NULL;
    UBuf o = {NULL, 0, 0};
    PyObject *result = NULL;
    Py_UCS4 maxc = 0;
    if (normalise_core(st, text, &o, &result, &maxc) < 0) {
        PyMem_Free(o.buf);
        return NULL;
    }
    if (!result) {
        if (maxc < 128) {
            result = PyUnicode_New(o.len, 127);
            if (result) {
                Py_UCS1 *d = PyUnicode_1BYTE_DATA(result);
                for (Py_ssize_t k = 0; k < o.len; k++)
                    d[k] = (Py_UCS1)o.buf[k];
            }
        }
        else {
            result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, o.buf, o.len);
        }
    }
    PyMem_Free(o.buf);
    return result;
}

/* configure()'s tlds: lower-case ASCII labels, into one PyMem block (the pointers, NULL, then the
 * text); NULL with an exception on error. */
static const char **
parse_tlds(PyObject *obj)
{
    PyObject *seq = PySequence_Fast(obj, "configure(): tlds must be a sequence of str");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), bytes = 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = items[i];
        int ok = PyUnicode_Check(t);
#if PY_VERSION_HEX < 0x030C0000
        if (ok && PyUnicode_READY(t) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
#endif
        ok = ok && PyUnicode_IS_ASCII(t) && PyUnicode_GET_LENGTH(t) >= 1 && PyUnicode_GET_LENGTH(t) <= 63;
        for (Py_ssize_t k = 0; ok && k < PyUnicode_GET_LENGTH(t); k++) {
            Py_UCS1 c = PyUnicode_1BYTE_DATA(t)[k];
            ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        }
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "configure(): tlds: %R is not a lower-case ASCII domain label", t);
            Py_DECREF(seq);
            return NULL;
        }
        bytes += PyUnicode_GET_LENGTH(t) + 1;
    }
    const char **tlds = PyMem_Malloc((size_t)(n + 1) * sizeof(char *) + (size_t)bytes);
    if (!tlds) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    char *text = (char *)(tlds + n + 1);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyUnicode_GET_LENGTH(items[i]);
        memcpy(text, PyUnicode_1BYTE_DATA(items[i]), (size_t)len + 1); /* with its NUL */
        tlds[i] = text;
        text += len + 1;
    }
    tlds[n] = NULL;
    Py_DECREF(seq);
    return tlds;
}

/* configure()'s character class `name` (a sequence of (lo, hi) code point ranges, inclusive) as the
 * bit cls: into cls_bmp, and the parts above U+FFFF into *astral (*n ranges, PyMem). Only
 * CL_SYMBOL may hold ASCII: the C code takes the other classes to be beyond it. -1 on error. */
static int
parse_ranges(PyObject *obj, const char *name, uint8_t cls, uint8_t *cls_bmp, Range **astral, Py_ssize_t *n)
{
    PyObject *seq = PySequence_Fast(obj, "configure(): a character class must be a sequence of (lo, hi) pairs");
    if (!seq)
        return -1;
    long low = cls == CL_SYMBOL ? 0 : 128;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        long lo = -1, hi = -1;
        if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
            lo = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
            hi = lo == -1 && PyErr_Occurred() ? -1 : PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
            if (hi == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
        }
        if (lo < low || hi < lo || hi > 0x10FFFF) {
            PyErr_Format(PyExc_ValueError, "configure(): %s: %R is not a range (lo, hi) of code points from %ld",
                         name, pair, low);
            Py_DECREF(seq);
            return -1;
        }
        for (long c = lo; c <= hi && c < 0x10000; c++)
            cls_bmp[c] |= cls;
        if (hi >= 0x10000) {
            Range *more = PyMem_Realloc(*astral, (size_t)(*n + 1) * sizeof(Range));
            if (!more) {
                Py_DECREF(seq);
                PyErr_NoMemory();
                return -1;
            }
            *astral = more;
            more[*n].lo = (Py_UCS4)(lo > 0x10000 ? lo : 0x10000);
            more[*n].hi = (Py_UCS4)hi;
            more[(*n)++].cls = cls;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
sp_configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"nfkc", "nfkc_char", "unescape", "tags", "emails", "urls", "phones", "tlds",
                            "invisible", "emoji", "word_marks", "nospace", "symbols", NULL};
    static const uint8_t classes[N_CLASSES] = {CL_INVISIBLE, CL_EMOJI, CL_WORDMARK, CL_NOSPACE, CL_SYMBOL};
    State *st = get_state(module);
    PyObject *h[N_HOOKS], *tlds_arg, *c[N_CLASSES];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOOOOO:configure", names, &h[0], &h[1], &h[2], &h[3],
                                     &h[4], &h[5], &h[6], &tlds_arg, &c[0], &c[1], &c[2], &c[3], &c[4]))
        return NULL;
    if (st->configured) {
        PyErr_SetString(PyExc_RuntimeError, "spamcli._speedups.configure() was already called on this module");
        return NULL;
    }
    for (int k = 0; k < N_HOOKS; k++) {
        if (!PyCallable_Check(h[k])) {
            PyErr_Format(PyExc_TypeError, "configure(): %s must be callable", names[k]);
            return NULL;
        }
    }
    Range *astral = NULL;
    Py_ssize_t n_astral = 0;
    const char **tlds = NULL;
    PyObject *info = NULL;
    memset(st->cls_bmp, 0, sizeof(st->cls_bmp));
    for (int k = 0; k < N_CLASSES; k++) {
        if (parse_ranges(c[k], names[N_HOOKS + 1 + k], classes[k], st->cls_bmp, &astral, &n_astral) < 0)
            goto error;
    }
    if (!(tlds = parse_tlds(tlds_arg)) || !(info = PyDict_New()))
        goto error;
    for (int k = 0; k < N_HOOKS; k++) {
        Py_INCREF(h[k]);
        st->hooks[k] = h[k];
    }
    st->nfkc_info = info;
    PyMem_Free(st->tlds); /* NULL, unless sp_clear() undid a configuration */
    PyMem_Free(st->astral);
    st->tlds = tlds;
    st->astral = astral;
    st->n_astral = n_astral;
    st->configured = 1;
    Py_RETURN_NONE;
error:
    PyMem_Free(astral);
    PyMem_Free(tlds);
    return NULL;
}

/* ---- tokenise ----------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t start, end; /* code points of the normalised text */
} Span;

/* _WORD: \w or a word mark */
static inline int
is_token_word(const State *st, Py_UCS4 c)
{
    if (c < 128)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    return (cflags(c) & CF_REWORD) || (char_class(st, c) & CL_WORDMARK);
}

/* _TOKEN_RE.findall plus the _NOSPACE_RE bigrams. `spans` has room for n + 1 (a text of n code
 * points has at most n tokens). Returns the number of tokens. */
static Py_ssize_t
token_spans(const State *st, int kind, const void *data, Py_ssize_t n, Span *spans)
{
    Py_ssize_t count = 0, i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == MARK_OPEN) {
            /* ⟨[^⟩\s]{1,80}⟩ */
            Py_ssize_t j = i + 1, k = 0;
            while (k < MARKER_MAX && j < n) {
                Py_UCS4 d = PyUnicode_READ(kind, data, j);
                if (d == MARK_CLOSE || is_space(d))
                    break;
                j++;
                k++;
            }
            if (k >= 1 && j < n && PyUnicode_READ(kind, data, j) == MARK_CLOSE) {
                spans[count].start = i;
                spans[count++].end = j + 1;
                i = j + 1;
            }
            else {
                i++; /* "⟨" is neither a symbol nor a word character */
            }
            continue;
        }
        if (is_symbol(st, c)) {
            spans[count].start = i;
            spans[count++].end = i + 1;
            i++;
            continue;
        }
        if (!is_token_word(st, c)) {
            i++;
            continue;
        }
        Py_ssize_t e = i + 1;
        while (e < n && is_token_word(st, PyUnicode_READ(kind, data, e)))
            e++;
        /* split the word at runs of no-space scripts: the runs become overlapping bigrams */
        Py_ssize_t p = i, q = i;
        while (q < e) {
            if (!is_nospace(st, PyUnicode_READ(kind, data, q))) {
                q++;
                continue;
            }
            Py_ssize_t r = q + 1;
            while (r < e && is_nospace(st, PyUnicode_READ(kind, data, r)))
                r++;
            if (q > p) {
                spans[count].start = p;
                spans[count++].end = q;
            }
            if (r - q == 1) {
                spans[count].start = q;
                spans[count++].end = r;
            }
            else {
                for (Py_ssize_t t = q; t < r - 1; t++) {
                    spans[count].start = t;
                    spans[count++].end = t + 2;
                }
            }
            p = q = r;
        }
        if (p < e) {
            spans[count].start = p;
            spans[count++].end = e;
        }
        i = e;
    }
    return count;
}

static PyObject *
sp_tokenise(PyObject *module, PyObject *s)
{
    const State *st = get_state(module);
    if (check_str(s, "tokenise") < 0 || !is_configured(st))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    Span *spans = PyMem_Malloc((size_t)(n + 1) * sizeof(Span));
    if (!spans)
        return PyErr_NoMemory();
    Py_ssize_t count = token_spans(st, PyUnicode_KIND(s), PyUnicode_DATA(s), n, spans);
    PyObject *list = PyList_New(count);
    for (Py_ssize_t t = 0; list && t < count; t++) {
        PyObject *tok = PyUnicode_Substring(s, spans[t].start, spans[t].end);
        if (!tok) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, t, tok);
    }
    PyMem_Free(spans);
    return list;
}

/* ---- columns ------------------------------------------------------------------------------ */

typedef struct {
    unsigned long long n_features;
    long word_ngrams, lo, hi; /* lo = hi = 0: no character n-grams */
    int binary;
} ColParams;

/* Work space of columns_core(), reused from text to text. */
typedef struct {
    Span *spans;
    Py_ssize_t spans_cap;
    Py_ssize_t *off; /* byte offset of each code point in utf8 */
    Py_ssize_t off_cap;
    unsigned char *utf8;
    Py_ssize_t utf8_cap;
    uint32_t *grams;
    Py_ssize_t grams_cap;
    uint32_t *cols; /* every column, in order, with repeats */
    Py_ssize_t cols_len, cols_cap;
    uint64_t *table; /* open addressing: (col + 1) | (index in uniq) << 33 */
    Py_ssize_t table_cap;
    uint32_t *uniq; /* the result: distinct columns in first-seen order ... */
    Py_ssize_t uniq_cap;
    double *counts; /* ... and their counts */
    Py_ssize_t counts_cap;
    Py_ssize_t n_uniq;
    UBuf norm; /* normalise() output */
} Scratch;

static void
scratch_free(Scratch *sc)
{
    PyMem_Free(sc->spans);
    PyMem_Free(sc->off);
    PyMem_Free(sc->utf8);
    PyMem_Free(sc->grams);
    PyMem_Free(sc->cols);
    PyMem_Free(sc->table);
    PyMem_Free(sc->uniq);
    PyMem_Free(sc->counts);
    PyMem_Free(sc->norm.buf);
}

static int
parse_params(PyObject *const *args, ColParams *p)
{
    p->n_features = PyLong_AsUnsignedLongLong(args[0]);
    if (p->n_features == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    p->word_ngrams = PyLong_AsLong(args[1]);
    if (p->word_ngrams == -1 && PyErr_Occurred())
        return -1;
    p->lo = PyLong_AsLong(args[2]);
    if (p->lo == -1 && PyErr_Occurred())
        return -1;
    p->hi = PyLong_AsLong(args[3]);
    if (p->hi == -1 && PyErr_Occurred())
        return -1;
    p->binary = PyObject_IsTrue(args[4]);
    if (p->binary < 0)
        return -1;
    if (p->n_features == 0) {
        PyErr_SetString(PyExc_ValueError, "n_features must be positive");
        return -1;
    }
    if (!(p->lo == 0 && p->hi == 0) && (p->lo < 1 || p->hi > 100000)) {
        PyErr_SetString(PyExc_ValueError, "character n-grams: 1 <= char_lo, char_hi <= 100000 (or both 0)");
        return -1;
    }
    return 0;
}

/* UTF-8 of one code point into out (at most 4 bytes); returns the length. */
static inline int
utf8_put(Py_UCS4 c, unsigned char *out)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

static inline uint32_t
col_of(uint32_t reg, unsigned long long n_features)
{
    return (uint32_t)((unsigned long long)(reg ^ 0xFFFFFFFFu) % n_features);
}

/* A lone surrogate has no UTF-8: Python's hash_feature raises UnicodeEncodeError for the first
 * token holding one ("w:" + token is hashed first); raise the same. Returns -1 if it raised. */
static int
surrogate_error(int kind, const void *data, const Span *spans, Py_ssize_t n_tokens)
{
    for (Py_ssize_t t = 0; t < n_tokens; t++) {
        for (Py_ssize_t i = spans[t].start; i < spans[t].end; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 0xD800 || c > 0xDFFF)
                continue;
            Py_ssize_t len = spans[t].end - spans[t].start;
            Py_UCS4 *buf = PyMem_Malloc((size_t)(len + 2) * sizeof(Py_UCS4));
            if (!buf) {
                PyErr_NoMemory();
                return -1;
            }
            buf[0] = 'w';
            buf[1] = ':';
            for (Py_ssize_t k = 0; k < len; k++)
                buf[2 + k] = PyUnicode_READ(kind, data, spans[t].start + k);
            PyObject *feature = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, len + 2);
            PyMem_Free(buf);
            if (!feature)
                return -1;
            PyObject *encoded = PyUnicode_AsUTF8String(feature); /* raises UnicodeEncodeError */
            Py_DECREF(feature);
            if (encoded) {
                Py_DECREF(encoded);
                PyErr_SetString(PyExc_SystemError, "a lone surrogate was encoded");
            }
            return -1;
        }
    }
    return 0;
}

/* The columns of a normalised text (kind, data, n) into sc->uniq[:sc->n_uniq] and (unless binary)
 * sc->counts: the order and values of Vectoriser._columns. -1 on error (MemoryError). */
static int
columns_core(const State *st, int kind, const void *data, Py_ssize_t n, const ColParams *p, Scratch *sc)
{
    if (reserve(&sc->off, &sc->off_cap, n + 1, sizeof(Py_ssize_t)) < 0 ||
        reserve(&sc->spans, &sc->spans_cap, n + 1, sizeof(Span)) < 0 ||
        reserve(&sc->utf8, &sc->utf8_cap, 4 * n + 1, 1) < 0)
        return -1;
    Py_ssize_t *off = sc->off, b = 0;
    unsigned char *bytes = sc->utf8;
    int surrogates = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *d = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            off[i] = b;
            if (d[i] < 0x80)
                bytes[b++] = d[i];
            else
                b += utf8_put(d[i], bytes + b);
        }
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            off[i] = b;
            b += utf8_put(c, bytes + b);
            surrogates |= c >= 0xD800 && c <= 0xDFFF;
        }
    }
    off[n] = b;
    Span *spans = sc->spans;
    Py_ssize_t n_tokens = token_spans(st, kind, data, n, spans);
    if (surrogates && surrogate_error(kind, data, spans, n_tokens) < 0)
        return -1;

    const uint32_t reg_w = crc_feed(0xFFFFFFFFu, (const unsigned char *)"w:", 2);
    const uint32_t reg_c = crc_feed(0xFFFFFFFFu, (const unsigned char *)"c:", 2);
    const uint32_t reg_b = crc_feed(0xFFFFFFFFu, (const unsigned char *)"b:", 2);
    const unsigned long long nf = p->n_features;
    const long lo = p->lo, hi = p->hi;
    const int char_ngrams = lo >= 1 && hi >= lo;

    sc->cols_len = 0;
    for (Py_ssize_t t = 0; t < n_tokens; t++) {
        Py_ssize_t ts = spans[t].start, te = spans[t].end, len = te - ts;
        if (reserve(&sc->cols, &sc->cols_cap, sc->cols_len + 1, sizeof(uint32_t)) < 0)
            return -1;
        sc->cols[sc->cols_len++] = col_of(crc_feed(reg_w, bytes + off[ts], off[te] - off[ts]), nf);
        if (!char_ngrams || len < 2 || PyUnicode_READ(kind, data, ts) == MARK_OPEN)
            continue;
        /* character n-grams of " token ": from each start, the sizes lo..hi in one CRC stream */
        Py_ssize_t P = len + 2, top = hi < P ? hi : P;
        if (top < lo)
            continue;
        if (reserve(&sc->grams, &sc->grams_cap, (top - lo + 1) * P, sizeof(uint32_t)) < 0)
            return -1;
        uint32_t *grams = sc->grams;
        for (Py_ssize_t i = 0; i + lo <= P; i++) {
            uint32_t r = reg_c;
            Py_ssize_t end = i + top < P ? i + top : P;
            for (Py_ssize_t q = i; q < end; q++) {
                if (q == 0 || q == P - 1)
                    r = crc_byte(r, ' ');
                else
                    r = crc_feed(r, bytes + off[ts + q - 1], off[ts + q] - off[ts + q - 1]);
                Py_ssize_t size = q - i + 1;
                if (size >= lo)
                    grams[(size - lo) * P + i] = col_of(r, nf);
            }
        }
        Py_ssize_t total = 0;
        for (Py_ssize_t size = lo; size <= top; size++)
            total += P - size + 1;
        if (reserve(&sc->cols, &sc->cols_cap, sc->cols_len + total, sizeof(uint32_t)) < 0)
            return -1;
        for (Py_ssize_t size = lo; size <= top; size++) {
            memcpy(sc->cols + sc->cols_len, grams + (size - lo) * P, (size_t)(P - size + 1) * sizeof(uint32_t));
            sc->cols_len += P - size + 1;
        }
    }
    if (p->word_ngrams >= 2 && n_tokens > 1) {
        if (reserve(&sc->cols, &sc->cols_cap, sc->cols_len + n_tokens - 1, sizeof(uint32_t)) < 0)
            return -1;
        for (Py_ssize_t t = 1; t < n_tokens; t++) {
            Py_ssize_t as = spans[t - 1].start, ae = spans[t - 1].end, bs = spans[t].start, be = spans[t].end;
            uint32_t r = crc_feed(reg_b, bytes + off[as], off[ae] - off[as]);
            r = crc_byte(r, ' ');
            r = crc_feed(r, bytes + off[bs], off[be] - off[bs]);
            sc->cols[sc->cols_len++] = col_of(r, nf);
        }
    }

    /* distinct columns in first-seen order, with their counts */
    Py_ssize_t m = sc->cols_len, size = 16;
    while (size < 2 * m)
        size *= 2;
    if (reserve(&sc->table, &sc->table_cap, size, sizeof(uint64_t)) < 0 ||
        reserve(&sc->uniq, &sc->uniq_cap, m + 1, sizeof(uint32_t)) < 0 ||
        (!p->binary && reserve(&sc->counts, &sc->counts_cap, m + 1, sizeof(double)) < 0))
        return -1;
    uint64_t *table = sc->table;
    memset(table, 0, (size_t)size * sizeof(uint64_t));
    const uint64_t mask = (uint64_t)size - 1;
    const uint32_t *cols = sc->cols;
    uint32_t *uniq = sc->uniq;
    double *counts = p->binary ? NULL : sc->counts;
    Py_ssize_t n_uniq = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        uint32_t col = cols[k];
        uint64_t key = (uint64_t)col + 1, h = ((uint64_t)col * 0x9E3779B97F4A7C15ull) >> 29;
        for (;;) {
            h &= mask;
            uint64_t slot = table[h];
            if (slot == 0) {
                table[h] = key | ((uint64_t)n_uniq << 33);
                uniq[n_uniq] = col;
                if (counts)
                    counts[n_uniq] = 1.0;
                n_uniq++;
                break;
            }
            if ((slot & 0x1FFFFFFFFull) == key) {
                if (counts)
                    counts[slot >> 33] += 1.0;
                break;
            }
            h++;
        }
    }
    sc->n_uniq = n_uniq;
    return 0;
}

static PyObject *
sp_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "columns(normalised, n_features, word_ngrams, char_lo, char_hi, binary) takes 6 arguments");
        return NULL;
    }
    PyObject *s = args[0];
    const State *st = get_state(module);
    ColParams p;
    if (check_str(s, "columns") < 0 || parse_params(args + 1, &p) < 0 || !is_configured(st))
        return NULL;
    Scratch sc;
    memset(&sc, 0, sizeof(sc));
    PyObject *result = NULL, *cols = NULL, *vals = NULL;
    if (columns_core(st, PyUnicode_KIND(s), PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s), &p, &sc) < 0)
        goto done;
    cols = PyList_New(sc.n_uniq);
    if (!cols)
        goto done;
    for (Py_ssize_t k = 0; k < sc.n_uniq; k++) {
        PyObject *v = PyLong_FromUnsignedLong(sc.uniq[k]);
        if (!v)
            goto done;
        PyList_SET_ITEM(cols, k, v);
    }
    if (p.binary) {
        vals = Py_None;
        Py_INCREF(vals);
    }
    else {
        vals = PyList_New(sc.n_uniq);
        if (!vals)
            goto done;
        for (Py_ssize_t k = 0; k < sc.n_uniq; k++) {
            PyObject *v = PyFloat_FromDouble(sc.counts[k]);
            if (!v)
                goto done;
            PyList_SET_ITEM(vals, k, v);
        }
    }
    result = PyTuple_Pack(2, cols, vals);
done:
    Py_XDECREF(cols);
    Py_XDECREF(vals);
    scratch_free(&sc);
    return result;
}

/* ---- rows: Vectoriser.transform ----------------------------------------------------------- */

typedef struct {
    char *buf;
    Py_ssize_t len, cap; /* bytes */
} ByteBuf;

static inline int
bytebuf_put(ByteBuf *b, const void *src, Py_ssize_t n)
{
    if (n <= 0) /* an empty row: src may be NULL, and memcpy must not be given NULL */
        return 0;
    if (reserve(&b->buf, &b->cap, b->len + n, 1) < 0)
        return -1;
    memcpy(b->buf + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static PyObject *
sp_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "rows(texts, max_chars, n_features, word_ngrams, char_lo, char_hi, binary, "
                                         "cache, cache_limit, cache_max_chars) takes 10 arguments");
        return NULL;
    }
    State *st = get_state(module);
    if (!is_configured(st))
        return NULL;
    ColParams p;
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[1]);
    if (max_chars == -1 && PyErr_Occurred())
        return NULL;
    if (parse_params(args + 2, &p) < 0)
        return NULL;
    if (p.n_features > 0x80000000ull) {
        PyErr_SetString(PyExc_ValueError, "rows() writes int32 columns: n_features must be at most 2**31");
        return NULL;
    }
    PyObject *cache = args[7];
    if (cache != Py_None && !PyDict_Check(cache)) {
        PyErr_SetString(PyExc_TypeError, "rows(): cache must be a dict or None");
        return NULL;
    }
    Py_ssize_t cache_limit = PyLong_AsSsize_t(args[8]);
    if (cache_limit == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t cache_max_chars = PyLong_AsSsize_t(args[9]);
    if (cache_max_chars == -1 && PyErr_Occurred())
        return NULL;
    if (max_chars < 0)
        max_chars = 0; /* as text[:0]: only non-negative limits are meaningful */

    /* a private tuple: the Python hooks called below may switch threads, and another thread must not
     * be able to change (and free) the items of a list we hold borrowed references into */
    PyObject *seq = PySequence_Tuple(args[0]);
    if (!seq)
        return NULL;
    Py_ssize_t n_texts = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    const Py_ssize_t entry = p.binary ? 4 : 8; /* bytes per column in a packed row */
    Scratch sc;
    memset(&sc, 0, sizeof(sc));
    ByteBuf ind = {NULL, 0, 0}, val = {NULL, 0, 0};
    int64_t *indptr = PyMem_Malloc((size_t)(n_texts + 1) * sizeof(int64_t));
    PyObject *result = NULL, *o_indptr = NULL, *o_ind = NULL, *o_val = NULL;
    if (!indptr) {
        PyErr_NoMemory();
        goto done;
    }
    indptr[0] = 0;
    for (Py_ssize_t t = 0; t < n_texts; t++) {
        PyObject *text = items[t];
        if (check_str(text, "rows") < 0)
            goto done;
        if (cache != Py_None) {
            PyObject *packed = PyDict_GetItemWithError(cache, text); /* borrowed */
            if (packed) {
                if (!PyBytes_Check(packed) || PyBytes_GET_SIZE(packed) % entry) {
                    PyErr_SetString(PyExc_TypeError, "rows(): a cache entry is not a packed row");
                    goto done;
                }
                Py_ssize_t k = PyBytes_GET_SIZE(packed) / entry;
                const char *src = PyBytes_AS_STRING(packed);
                if (bytebuf_put(&ind, src, 4 * k) < 0 || (!p.binary && bytebuf_put(&val, src + 4 * k, 4 * k) < 0))
                    goto done;
                indptr[t + 1] = ind.len / 4;
                continue;
            }
            if (PyErr_Occurred())
                goto done;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        PyObject *sliced = len > max_chars ? PyUnicode_Substring(text, 0, max_chars) : (Py_INCREF(text), text);
        if (!sliced)
            goto done;
        PyObject *norm = NULL;
        Py_UCS4 maxc = 0;
        int failed = normalise_core(st, sliced, &sc.norm, &norm, &maxc);
        Py_DECREF(sliced);
        if (failed < 0)
            goto done;
        if (norm)
            failed = columns_core(st, PyUnicode_KIND(norm), PyUnicode_DATA(norm), PyUnicode_GET_LENGTH(norm), &p, &sc);
        else
            failed = columns_core(st, PyUnicode_4BYTE_KIND, sc.norm.buf, sc.norm.len, &p, &sc);
        Py_XDECREF(norm);
        if (failed < 0)
            goto done;
        Py_ssize_t k = sc.n_uniq, start_ind = ind.len, start_val = val.len;
        if (bytebuf_put(&ind, sc.uniq, 4 * k) < 0)
            goto done;
        if (!p.binary) {
            if (reserve(&val.buf, &val.cap, val.len + 4 * k, 1) < 0)
                goto done;
            float *dst = (float *)(val.buf + val.len);
            for (Py_ssize_t j = 0; j < k; j++)
                dst[j] = (float)sc.counts[j];
            val.len += 4 * k;
        }
        indptr[t + 1] = ind.len / 4;
        if (cache != Py_None && len <= cache_max_chars) {
            if (PyDict_GET_SIZE(cache) >= cache_limit)
                PyDict_Clear(cache);
            PyObject *packed = PyBytes_FromStringAndSize(NULL, entry * k);
            if (!packed)
                goto done;
            if (k > 0) { /* an empty row has nothing to copy (and its buffers may still be NULL) */
                memcpy(PyBytes_AS_STRING(packed), ind.buf + start_ind, (size_t)(4 * k));
                if (!p.binary)
                    memcpy(PyBytes_AS_STRING(packed) + 4 * k, val.buf + start_val, (size_t)(4 * k));
            }
            failed = PyDict_SetItem(cache, text, packed);
            Py_DECREF(packed);
            if (failed < 0)
                goto done;
        }
    }
    o_indptr = PyByteArray_FromStringAndSize((const char *)indptr, (Py_ssize_t)((n_texts + 1) * sizeof(int64_t)));
    o_ind = PyByteArray_FromStringAndSize(ind.buf ? ind.buf : "", ind.len);
    if (p.binary) {
        o_val = Py_None;
        Py_INCREF(o_val);
    }
    else {
        o_val = PyByteArray_FromStringAndSize(val.buf ? val.buf : "", val.len);
    }
    if (o_indptr && o_ind && o_val)
        result = PyTuple_Pack(3, o_indptr, o_ind, o_val);
done:
    Py_XDECREF(o_indptr);
    Py_XDECREF(o_ind);
    Py_XDECREF(o_val);
    PyMem_Free(indptr);
    PyMem_Free(ind.buf);
    PyMem_Free(val.buf);
    scratch_free(&sc);
    Py_DECREF(seq);
    return result;
}

/* ---- scoring ------------------------------------------------------------------------------ */

/* NaiveBayesModel.decision_function of kind "nblr" over CSR rows, row by row in entry order: the
 * same float64 operations in the same order as the numpy code (products, squares, sums from 0.0
 * as np.bincount adds them, max with the floor, sqrt, 1/x), so the results are bit-identical.
 * Floating-point contraction is off: no fused multiply-add may change a rounding. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
static int
get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *name, int writable)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->itemsize != itemsize || view->len % itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes", name, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* args[first .. first + n) as doubles; -1 with an exception set on failure. */
static int
get_doubles(PyObject *const *args, Py_ssize_t first, Py_ssize_t n, double *out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(args[first + i]);
        if (out[i] == -1.0 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *
sp_nblr_scores(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[] = {"indptr", "indices", "data", "slot", "r", "u", "v", "out"};
    static const Py_ssize_t sizes[] = {8, 4, 4, 4, 8, 8, 8, 8};
    Py_buffer b[8];
    int got = 0, ok = 0;
    double numbers[3], floor_plain, floor_nb, intercept;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "nblr_scores takes 11 arguments");
        return NULL;
    }
    if (get_doubles(args, 8, 3, numbers) < 0)
        return NULL;
    floor_plain = numbers[0], floor_nb = numbers[1], intercept = numbers[2];
    for (; got < 8; got++)
        if (get_buffer(args[got], &b[got], sizes[got], names[got], got == 7) < 0)
            goto done;
    {
        const int64_t *indptr = b[0].buf;
        const int32_t *indices = b[1].buf;
        const float *data = b[2].buf;
        const int32_t *slot = b[3].buf;
        const double *r = b[4].buf, *u = b[5].buf, *v = b[6].buf;
        double *out = b[7].buf;
        Py_ssize_t n_rows = b[0].len / 8 - 1, n_entries = b[1].len / 4, n_slot = b[3].len / 4;
        Py_ssize_t n_table = b[4].len / 8;
        if (n_rows < 0 || b[7].len / 8 != n_rows || b[2].len / 4 != n_entries || b[5].len / 8 != n_table
            || b[6].len / 8 != n_table || n_table < 1) {
            PyErr_SetString(PyExc_ValueError, "nblr_scores: array lengths do not match");
            goto done;
        }
        for (Py_ssize_t i = 0; i < n_rows; i++) {
            int64_t lo = indptr[i], hi = indptr[i + 1];
            double sq_plain = 0.0, sq_nb = 0.0, sum_u = 0.0, sum_v = 0.0, norm, inv_plain, inv_nb;
            if (lo < 0 || hi < lo || hi > n_entries) {
                PyErr_SetString(PyExc_ValueError, "nblr_scores: bad indptr");
                goto done;
            }
            for (int64_t k = lo; k < hi; k++) {
                int32_t col = indices[k];
                Py_ssize_t pos;
                double x = (double)data[k], weighted;
                if (col < 0 || col >= n_slot) {
                    PyErr_SetString(PyExc_ValueError, "nblr_scores: column out of range");
                    goto done;
                }
                pos = slot[col] < 0 ? n_table - 1 : slot[col];
                if (pos >= n_table) {
                    PyErr_SetString(PyExc_ValueError, "nblr_scores: slot out of range");
                    goto done;
                }
                weighted = x * r[pos];
                sq_plain += x * x;
                sq_nb += weighted * weighted;
                sum_u += x * u[pos];
                sum_v += weighted * v[pos];
            }
            norm = sqrt(sq_plain > floor_plain ? sq_plain : floor_plain);
            inv_plain = norm > 0 ? 1.0 / norm : 0.0;
            norm = sqrt(sq_nb > floor_nb ? sq_nb : floor_nb);
            inv_nb = norm > 0 ? 1.0 / norm : 0.0;
            out[i] = (intercept + sum_u * inv_plain) + sum_v * inv_nb;
        }
    }
    ok = 1;
done:
    while (got-- > 0)
        PyBuffer_Release(&b[got]);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

/* nblr_fit: the regression of spamcli.model (kind "nblr"), fitted on the hashed rows themselves.
 * Each row x stands for its two views (module docstring of spamcli.model): x_j / N(x) at weight
 * w[slot_j] and x_j r_j / N_r(x r) at weight w[k + slot_j], for the k seen columns (slot >= 0;
 * entries of unseen columns are skipped), plus a bias feature of value 1 (w[2k], scikit-learn's
 * intercept_scaling=1), so the views are never built. The solver is liblinear's
 * solve_l2r_lr_dual (Yu, Huang and Lin, "Dual coordinate descent methods for logistic regression
 * and maximum entropy models", MLJ 2011, algorithm 5), step for step, with its own seeded generator
 * shuffling the rows each pass: a fit is the same whatever else runs (liblinear's generator is one
 * per process, drawn from in turn by fits on several threads). Runs without the GIL.
 * rows: the rows of the CSR matrix (indptr, indices, data) fitted on, so a fold needs no copy;
 * y: +1 / -1 per fitted row; upper: the bound C_i of its dual variable (C times its weight).
 * Returns the passes made. */
static uint64_t
lr_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static PyObject *
sp_nblr_fit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[] = {"indptr", "indices", "data", "slot", "r", "rows", "y", "upper", "w"};
    static const Py_ssize_t sizes[] = {8, 4, 4, 4, 8, 8, 8, 8, 8};
    Py_buffer b[9];
    int got = 0, ok = 0, bad = 0;
    double numbers[3], floor_plain, floor_nb, eps;
    long max_iter, iter = 0;
    unsigned long long seed;
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "nblr_fit takes 14 arguments");
        return NULL;
    }
    if (get_doubles(args, 9, 3, numbers) < 0)
        return NULL;
    floor_plain = numbers[0], floor_nb = numbers[1], eps = numbers[2];
    max_iter = PyLong_AsLong(args[12]);
    if (max_iter == -1 && PyErr_Occurred())
        return NULL;
    seed = PyLong_AsUnsignedLongLongMask(args[13]);
    if (seed == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    for (; got < 9; got++)
        if (get_buffer(args[got], &b[got], sizes[got], names[got], got == 8) < 0)
            goto done;
    {
        const int64_t *xptr = b[0].buf, *rows = b[5].buf;
        const int32_t *indices = b[1].buf, *slot = b[3].buf;
        const float *data = b[2].buf;
        const double *r = b[4].buf, *yv = b[6].buf, *upper = b[7].buf;
        double *w = b[8].buf;
        Py_ssize_t n_x = b[0].len / 8 - 1, l = b[5].len / 8, n_entries = b[1].len / 4, n_slot = b[3].len / 4;
        Py_ssize_t k = b[4].len / 8;
        double *xTx = NULL, *alpha = NULL, *inv = NULL;
        Py_ssize_t *index = NULL;
        int64_t *indptr = NULL; /* indptr[2i], indptr[2i + 1]: where problem row i (X row rows[i]) lies */
        if (l < 1 || n_x < 0 || b[2].len / 4 != n_entries || b[6].len / 8 != l || b[7].len / 8 != l
            || b[8].len / 8 != 2 * k + 1) {
            PyErr_SetString(PyExc_ValueError, "nblr_fit: array lengths do not match");
            goto done;
        }
        indptr = PyMem_RawMalloc(sizeof(int64_t) * 2 * l);
        if (!indptr) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < l && !bad; i++) {
            int64_t row = rows[i];
            if (row < 0 || row >= n_x || xptr[row] < 0 || xptr[row + 1] < xptr[row] || xptr[row + 1] > n_entries
                || !(upper[i] > 0)) {
                bad = 1;
                break;
            }
            indptr[2 * i] = xptr[row];
            indptr[2 * i + 1] = xptr[row + 1];
            for (int64_t e = indptr[2 * i]; e < indptr[2 * i + 1] && !bad; e++)
                if (indices[e] < 0 || indices[e] >= n_slot || slot[indices[e]] >= k)
                    bad = 1;
        }
        if (bad) {
            PyMem_RawFree(indptr);
            PyErr_SetString(PyExc_ValueError, "nblr_fit: bad rows, columns or bounds");
            goto done;
        }
        xTx = PyMem_RawMalloc(sizeof(double) * l);
        alpha = PyMem_RawMalloc(sizeof(double) * 2 * l);
        inv = PyMem_RawMalloc(sizeof(double) * 2 * l);
        index = PyMem_RawMalloc(sizeof(Py_ssize_t) * l);
        if (!xTx || !alpha || !inv || !index) {
            PyMem_RawFree(indptr);
            PyMem_RawFree(xTx);
            PyMem_RawFree(alpha);
            PyMem_RawFree(inv);
            PyMem_RawFree(index);
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        {
            uint64_t state = (uint64_t)seed;
            double innereps = 1e-2, innereps_min = eps < 1e-8 ? eps : 1e-8;
            const int max_inner_iter = 100;
            double *wp = w, *wn = w + k, *wb = w + 2 * k;
            for (Py_ssize_t j = 0; j < 2 * k + 1; j++)
                w[j] = 0.0;
            for (Py_ssize_t i = 0; i < l; i++) {
                double C = upper[i], sq_plain = 0.0, sq_nb = 0.0, norm, ip, in, a0;
                for (int64_t e = indptr[2 * i]; e < indptr[2 * i + 1]; e++) {
                    int32_t pos = slot[indices[e]];
                    double x = (double)data[e];
                    if (pos < 0)
                        continue;
                    sq_plain += x * x;
                    sq_nb += (x * r[pos]) * (x * r[pos]);
                }
                norm = sqrt(sq_plain > floor_plain ? sq_plain : floor_plain);
                ip = inv[2 * i] = norm > 0 ? 1.0 / norm : 0.0;
                norm = sqrt(sq_nb > floor_nb ? sq_nb : floor_nb);
                in = inv[2 * i + 1] = norm > 0 ? 1.0 / norm : 0.0;
                xTx[i] = sq_plain * ip * ip + sq_nb * in * in + 1.0; /* + the bias feature */
                alpha[2 * i] = a0 = 0.001 * C < 1e-8 ? 0.001 * C : 1e-8;
                alpha[2 * i + 1] = C - a0;
                for (int64_t e = indptr[2 * i]; e < indptr[2 * i + 1]; e++) {
                    int32_t pos = slot[indices[e]];
                    double x = (double)data[e];
                    if (pos < 0)
                        continue;
                    wp[pos] += yv[i] * a0 * x * ip;
                    wn[pos] += yv[i] * a0 * x * r[pos] * in;
                }
                *wb += yv[i] * a0;
                index[i] = i;
            }
            while (iter < max_iter) {
                long newton_iter = 0;
                double Gmax = 0.0;
                for (Py_ssize_t i = 0; i < l; i++) {
                    Py_ssize_t j = i + (Py_ssize_t)(lr_next(&state) % (uint64_t)(l - i)), t = index[i];
                    index[i] = index[j];
                    index[j] = t;
                }
                for (Py_ssize_t s = 0; s < l; s++) {
                    Py_ssize_t i = index[s];
                    double yi = yv[i], C = upper[i], ip = inv[2 * i], in = inv[2 * i + 1];
                    double wx_plain = 0.0, wx_nb = 0.0, a = xTx[i], b, alpha_old, z, gp;
                    Py_ssize_t ind1 = 2 * i, ind2 = 2 * i + 1;
                    int sign = 1, inner_iter = 0;
                    for (int64_t e = indptr[2 * i]; e < indptr[2 * i + 1]; e++) {
                        int32_t pos = slot[indices[e]];
                        double x = (double)data[e];
                        if (pos < 0)
                            continue;
                        wx_plain += wp[pos] * x;
                        wx_nb += wn[pos] * x * r[pos];
                    }
                    b = (wx_plain * ip + wx_nb * in + *wb) * yi;
                    if (0.5 * a * (alpha[ind2] - alpha[ind1]) + b < 0) {
                        ind1 = 2 * i + 1;
                        ind2 = 2 * i;
                        sign = -1;
                    }
                    alpha_old = alpha[ind1];
                    z = alpha_old;
                    if (C - z < 0.5 * C)
                        z = 0.1 * z;
                    gp = a * (z - alpha_old) + sign * b + log(z / (C - z));
                    if (fabs(gp) > Gmax)
                        Gmax = fabs(gp);
                    while (inner_iter <= max_inner_iter) {
                        double gpp, tmpz;
                        if (fabs(gp) < innereps)
                            break;
                        gpp = a + C / (C - z) / z;
                        tmpz = z - gp / gpp;
                        z = tmpz <= 0 ? z * 0.1 : tmpz;
                        gp = a * (z - alpha_old) + sign * b + log(z / (C - z));
                        newton_iter++;
                        inner_iter++;
                    }
                    if (inner_iter > 0) {
                        double step = sign * (z - alpha_old) * yi, sp_ = step * ip, sn = step * in;
                        alpha[ind1] = z;
                        alpha[ind2] = C - z;
                        for (int64_t e = indptr[2 * i]; e < indptr[2 * i + 1]; e++) {
                            int32_t pos = slot[indices[e]];
                            double x = (double)data[e];
                            if (pos < 0)
                                continue;
                            wp[pos] += sp_ * x;
                            wn[pos] += sn * x * r[pos];
                        }
                        *wb += step;
                    }
                }
                iter++;
                if (Gmax < eps)
                    break;
                if (newton_iter <= l / 10)
                    innereps = innereps_min > 0.1 * innereps ? innereps_min : 0.1 * innereps;
            }
        }
        Py_END_ALLOW_THREADS
        PyMem_RawFree(indptr);
        PyMem_RawFree(xTx);
        PyMem_RawFree(alpha);
        PyMem_RawFree(inv);
        PyMem_RawFree(index);
    }
    ok = 1;
done:
    while (got-- > 0)
        PyBuffer_Release(&b[got]);
    if (!ok)
        return NULL;
    return PyLong_FromLong(iter);
}

/* class_counts: out[y_i * n_cols + col] += value for every entry of X row rows[i] (what
 * MultinomialNB counts), in place, without the GIL and without a copy of the rows. */
static PyObject *
sp_class_counts(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[] = {"indptr", "indices", "data", "rows", "y", "out"};
    static const Py_ssize_t sizes[] = {8, 4, 4, 8, 8, 8};
    Py_buffer b[6];
    int got = 0, ok = 0, bad = 0;
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "class_counts takes 6 arguments");
        return NULL;
    }
    for (; got < 6; got++)
        if (get_buffer(args[got], &b[got], sizes[got], names[got], got == 5) < 0)
            goto done;
    {
        const int64_t *indptr = b[0].buf, *rows = b[3].buf, *y = b[4].buf;
        const int32_t *indices = b[1].buf;
        const float *data = b[2].buf;
        double *out = b[5].buf;
        Py_ssize_t n_x = b[0].len / 8 - 1, l = b[3].len / 8, n_entries = b[1].len / 4, n_cols = b[5].len / 16;
        if (n_x < 0 || b[2].len / 4 != n_entries || b[4].len / 8 != l || b[5].len != 16 * n_cols) {
            PyErr_SetString(PyExc_ValueError, "class_counts: array lengths do not match");
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < l && !bad; i++) {
            int64_t row = rows[i];
            if (row < 0 || row >= n_x || (y[i] != 0 && y[i] != 1) || indptr[row] < 0 || indptr[row + 1] < indptr[row]
                || indptr[row + 1] > n_entries) {
                bad = 1;
                break;
            }
            for (int64_t e = indptr[row]; e < indptr[row + 1]; e++) {
                if (indices[e] < 0 || indices[e] >= n_cols) {
                    bad = 1;
                    break;
                }
                out[y[i] * n_cols + indices[e]] += (double)data[e];
            }
        }
        Py_END_ALLOW_THREADS
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "class_counts: bad rows, labels or columns");
            goto done;
        }
    }
    ok = 1;
done:
    while (got-- > 0)
        PyBuffer_Release(&b[got]);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- module ------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"normalise", (PyCFunction)sp_normalise, METH_O,
     "normalise(text) -> str: spamcli.text.normalise (after configure())."},
    {"tokenise", (PyCFunction)sp_tokenise, METH_O, "tokenise(normalised) -> list[str]: spamcli.text.tokenise."},
    {"columns", (PyCFunction)(void (*)(void))sp_columns, METH_FASTCALL,
     "columns(normalised, n_features, word_ngrams, char_lo, char_hi, binary) -> (list[int], list[float] | None):\n"
     "Vectoriser._columns of the text whose normalise() is `normalised` (char_lo = char_hi = 0: no char n-grams)."},
    {"rows", (PyCFunction)(void (*)(void))sp_rows, METH_FASTCALL,
     "rows(texts, max_chars, n_features, word_ngrams, char_lo, char_hi, binary, cache, cache_limit, cache_max_chars)\n"
     "-> (indptr, indices, data | None): Vectoriser.transform as bytearrays of int64, int32 and float32."},
    {"nblr_scores", (PyCFunction)(void (*)(void))sp_nblr_scores, METH_FASTCALL,
     "nblr_scores(indptr, indices, data, slot, r, u, v, out, floor_plain, floor_nb, intercept) -> None:\n"
     "NaiveBayesModel.decision_function (kind nblr) into `out` (float64, one per row); bit-identical to numpy."},
    {"class_counts", (PyCFunction)(void (*)(void))sp_class_counts, METH_FASTCALL,
     "class_counts(indptr, indices, data, rows, y, out) -> None: per-class column totals of the rows, added to out."},
    {"nblr_fit", (PyCFunction)(void (*)(void))sp_nblr_fit, METH_FASTCALL,
     "nblr_fit(indptr, indices, data, slot, r, rows, y, upper, w, floor_plain, floor_nb, eps, max_iter, seed) -> passes:\n"
     "spamcli.model's regression on hashed rows, by liblinear's dual coordinate descent, seeded, without the GIL."},
    {"configure", (PyCFunction)(void (*)(void))sp_configure, METH_VARARGS | METH_KEYWORDS,
     "configure(nfkc, nfkc_char, unescape, tags, emails, urls, phones, tlds, invisible, emoji, word_marks, nospace,\n"
     "symbols): the Python passes normalise() calls and spamcli.text's tables; once per module object."},
    {NULL, NULL, 0, NULL},
};

/* The module state holds Python objects: the garbage collector sees them through these. Called
 * with st NULL before the state exists. */
static int
sp_traverse(PyObject *module, visitproc visit, void *arg)
{
    State *st = get_state(module);
    if (!st)
        return 0;
    for (int k = 0; k < N_HOOKS; k++)
        Py_VISIT(st->hooks[k]);
    Py_VISIT(st->nfkc_info);
    return 0;
}

static int
sp_clear(PyObject *module)
{
    State *st = get_state(module);
    if (!st)
        return 0;
    for (int k = 0; k < N_HOOKS; k++)
        Py_CLEAR(st->hooks[k]);
    Py_CLEAR(st->nfkc_info);
    Py_CLEAR(st->str_nfkc);
    Py_CLEAR(st->str_lower);
    Py_CLEAR(st->str_caps);
    Py_CLEAR(st->str_space_caps);
    st->configured = 0; /* its hooks are gone */
    return 0;
}

static void
sp_free(void *module)
{
    State *st = get_state((PyObject *)module);
    if (!st)
        return;
    sp_clear((PyObject *)module);
    PyMem_Free(st->tlds);
    PyMem_Free(st->astral);
    st->tlds = NULL;
    st->astral = NULL;
}

/* Py_mod_exec: the constants of a new module object (its tables and hooks come with configure()) */
static int
sp_exec(PyObject *module)
{
    State *st = get_state(module);
    crc_init(); /* process-wide: the same values every time */
    st->str_nfkc = PyUnicode_InternFromString("NFKC");
    st->str_lower = PyUnicode_InternFromString("lower");
    st->str_caps = PyUnicode_FromString("\xe2\x9f\xa8" "caps" "\xe2\x9f\xa9");
    st->str_space_caps = PyUnicode_FromString(" \xe2\x9f\xa8" "caps" "\xe2\x9f\xa9");
    return st->str_nfkc && st->str_lower && st->str_caps && st->str_space_caps ? 0 : -1;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, sp_exec},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "spamcli._speedups",
    .m_doc = "C versions of spamcli.text's normalise, tokenise and Vectoriser._columns / transform (same results).",
    .m_size = sizeof(State),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = sp_traverse,
    .m_clear = sp_clear,
    .m_free = sp_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&moduledef);
}
