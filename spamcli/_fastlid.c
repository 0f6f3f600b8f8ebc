/* spamcli._fastlid: fastText's top-1 prediction for a supervised model with hierarchical softmax
 * (lid.176.ftz, language identification), bit-identical to the fastText binding, without it.
 *
 *   Model(path) -> model
 *       Reads a fastText model file: .ftz (quantized) or .bin (dense), supervised, loss hs. Anything
 *       else raises ValueError with the reason: another model kind or loss, a truncated, corrupt or
 *       foreign file, sizes that do not agree. Every size is checked against the bytes left in the
 *       file and against the other sizes before it is used, so no file makes it read out of
 *       bounds. OSError when the file cannot be read.
 *   model.predict(texts: list[str] | tuple[str, ...]) -> list[tuple[str, float] | None]
 *       What fasttext's model.predict(texts, k=1) (threshold 0) gives, text by text: the label as
 *       fastText spells it, prefix kept ("__label__en"), and its probability, the Python float of
 *       fastText's float32 (bit-identical; it can exceed 1.0 by a hair, as fastText's does: up to
 *       1.00007 on 248 of the 38,069 shared dataset texts). None where fastText gives no label (no
 *       input row: a dictionary without "</s>"; or every path of the tree below the threshold,
 *       which takes some 100,000 labels). A text with "\n" raises ValueError, as fastText's
 *       predict does; a lone surrogate raises UnicodeEncodeError (where the binding raises
 *       TypeError: neither can write it as UTF-8).
 *   model.labels, model.dim, model.nwords, model.quantized
 *   model.cached_words, model.clear_cache(): the word cache (below), for tests.
 *
 * What is reproduced, from fastText 0.9.x as fasttext-numpy2 0.10.4 ships it (src/dictionary.cc,
 * model.cc, loss.cc, quantmatrix.cc, productquantizer.cc, densematrix.cc, fasttext.cc and the
 * pybind module):
 *   - predict(list) appends "\n" to each text; Dictionary::getLine splits on ' ' \n \r \t \v \f \0;
 *     the final "\n" is the token "</s>"; a token "</s>" ends the line.
 *   - a token of the dictionary: its rows computed at load (its id, then the rows of its character
 *     n-grams), none for a label; a word outside it: the character n-grams of "<word>" (minn..maxn
 *     UTF-8 characters, FNV-1a 32 over signed bytes, modulo bucket), each kept only where the
 *     pruned dictionary keeps the bucket; a token outside it starting with "__label__": nothing;
 *     word n-grams (wordNgrams > 1) after the tokens.
 *   - the hidden vector: the rows added in order, in float (a quantized row: norm * centroid, per
 *     subquantizer), then multiplied by (float)(1.0 / rows).
 *   - the hierarchical-softmax tree (Huffman over the label counts) searched depth first, left
 *     child first: std_log(x) = (float)log((double)x + 1e-5), f = (float)(1.0 / (1.0f +
 *     expf(-dot))), a branch pruned when its score is below std_log(0) or below the best leaf; a
 *     later leaf with an equal score replaces the earlier one (std::push_heap/pop_heap, k = 1).
 *     The probability is expf(score).
 * Speed: the pruned buckets are a bitmap with rank counts (one cache line for a bucket that is not
 * kept, the common case) instead of std::unordered_map; the buckets of a word are looked up as a
 * batch of independent loads; and the rows of a word outside the dictionary are remembered (up to
 * CACHE_WORDS words of at most CACHE_TOKEN bytes; emptied when full): streams repeat words. The
 * rows are the same either way, and are added in the same order.
 * predict holds the GIL (as the binding does): the word cache and the scratch buffers belong to
 * the model, and no Python code runs inside a text's prediction. Floating-point contraction is off:
 * a fused multiply-add would change roundings (the binding's build has none); expf and log are the
 * C library's, as the binding's. Memory for lid.176.ftz: ~1.7 MB loaded (the binding: ~3.6 MB),
 * up to ~1 MB more for the word cache.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if PY_VERSION_HEX >= 0x030C0000
#define FL_T_INT Py_T_INT
#define FL_READONLY Py_READONLY
#else
#include <structmember.h>
#define FL_T_INT T_INT
#define FL_READONLY READONLY
#endif
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define FT_MAGIC 793712314
#define FT_VERSION 12
#define KSUB 256
#define LOSS_HS 1
#define MODEL_SUP 3
#define TYPE_WORD 0
#define TYPE_LABEL 1
#define MAX_DIM (1 << 20)
#define MAX_WORD_NGRAMS (1 << 20)
#define MAX_CHAR_NGRAM 256                /* maxn above this: not a fastText model we support */
#define MAX_FILE_BYTES ((size_t)1 << 30) /* larger files are not language-id models */
#define BATCH 64
/* the word cache: how many words, how long a word, how many bytes of words and rows in all */
#define CACHE_WORDS 16384
#define CACHE_TOKEN 64
#define CACHE_KEY_BYTES (1 << 19)
#define CACHE_ROWS (1 << 18)
/* scratch buffers larger than this are freed after a call */
#define SCRATCH_KEEP (1 << 20)

static const char EOS[] = "</s>";
static const char LABEL_PREFIX[] = "__label__";

/* ---- matrices ----------------------------------------------------------------------------- */

typedef struct {
    int32_t dim, nsubq, dsub, lastdsub;
    float *centroids; /* dim * KSUB */
} PQ;

typedef struct {
    int quant;
    int64_t m, n;
    float *data; /* dense: m * n */
    int qnorm;
    uint8_t *codes; /* quantized: m * nsubq */
    PQ pq;
    uint8_t *norm_codes; /* qnorm: m */
    PQ npq;
} Matrix;

static void
matrix_free(Matrix *mat)
{
    PyMem_Free(mat->data);
    PyMem_Free(mat->codes);
    PyMem_Free(mat->norm_codes);
    PyMem_Free(mat->pq.centroids);
    PyMem_Free(mat->npq.centroids);
    memset(mat, 0, sizeof *mat);
}

/* ProductQuantizer::get_centroids */
static inline const float *
pq_get_centroids(const PQ *pq, int32_t m, uint8_t i)
{
    if (m == pq->nsubq - 1)
        return &pq->centroids[(int64_t)m * KSUB * pq->dsub + (int64_t)i * pq->lastdsub];
    return &pq->centroids[((int64_t)m * KSUB + i) * pq->dsub];
}

static inline float
row_norm(const Matrix *mat, int64_t row)
{
    return mat->qnorm ? pq_get_centroids(&mat->npq, 0, mat->norm_codes[row])[0] : 1.0f;
}

/* QuantMatrix::addRowToVector (ProductQuantizer::addcode) / DenseMatrix::addRowToVector */
static inline void
add_row(const Matrix *mat, float *x, int64_t row)
{
    if (mat->quant) {
        const PQ *pq = &mat->pq;
        const float norm = row_norm(mat, row);
        const uint8_t *code = mat->codes + (int64_t)pq->nsubq * row;
        if (pq->dsub == 2 && pq->lastdsub == 2) { /* lid.176: the same operations, unrolled */
            for (int32_t m = 0; m < pq->nsubq; m++) {
                const float *c = pq->centroids + ((int64_t)m * KSUB + code[m]) * 2;
                x[2 * m] += norm * c[0];
                x[2 * m + 1] += norm * c[1];
            }
            return;
        }
        int32_t d = pq->dsub;
        for (int32_t m = 0; m < pq->nsubq; m++) {
            const float *c = pq_get_centroids(pq, m, code[m]);
            if (m == pq->nsubq - 1)
                d = pq->lastdsub;
            float *xm = x + (int64_t)m * pq->dsub;
            for (int32_t k = 0; k < d; k++)
                xm[k] += norm * c[k];
        }
        return;
    }
    const float *r = mat->data + row * mat->n;
    for (int64_t j = 0; j < mat->n; j++)
        x[j] += r[j];
}

/* QuantMatrix::dotRow (ProductQuantizer::mulcode) / DenseMatrix::dotRow */
static inline float
dot_row(const Matrix *mat, const float *x, int64_t row)
{
    if (mat->quant) {
        const PQ *pq = &mat->pq;
        const float norm = row_norm(mat, row);
        const uint8_t *code = mat->codes + (int64_t)pq->nsubq * row;
        float res = 0.0f;
        int32_t d = pq->dsub;
        for (int32_t m = 0; m < pq->nsubq; m++) {
            const float *c = pq_get_centroids(pq, m, code[m]);
            if (m == pq->nsubq - 1)
                d = pq->lastdsub;
            const float *xm = x + (int64_t)m * pq->dsub;
            for (int32_t k = 0; k < d; k++)
                res += xm[k] * c[k];
        }
        return res * norm;
    }
    const float *r = mat->data + row * mat->n;
    float d = 0.0f;
    for (int64_t j = 0; j < mat->n; j++)
        d += r[j] * x[j];
    return d;
}

/* fastText's std_log(real): the float goes up to double for the 1e-5, the log comes back as float */
static inline float
std_log(float x)
{
    return (float)log((double)x + 1e-5);
}

/* Dictionary::hash: FNV-1a over the bytes as signed chars (bytes >= 0x80 sign-extended) */
static inline uint32_t
fnv_feed(uint32_t h, unsigned char b)
{
    return (h ^ (uint32_t)(int32_t)(int8_t)b) * 16777619u;
}

static uint32_t
fnv(const unsigned char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = fnv_feed(h, s[i]);
    return h;
}

static inline uint32_t
popcount64(uint64_t x)
{
#if defined(__GNUC__) && defined(__POPCNT__)
    return (uint32_t)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555u);
    x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Fu;
    return (uint32_t)((x * 0x0101010101010101u) >> 56);
#endif
}

/* ---- the model ---------------------------------------------------------------------------- */

/* 64 buckets: which are kept, and how many are kept before them */
typedef struct {
    uint64_t bits;
    uint32_t base;
    uint32_t pad;
} BitBlock;

/* a slot of the token table: the token's hash and its entry (-1: empty) */
typedef struct {
    uint32_t hash;
    int32_t entry;
} Slot;

/* a token: the dictionary's entries first (0..size-1), then the cached words */
typedef struct {
    int64_t key_off; /* in keys */
    int64_t rows_off; /* in rows */
    int32_t key_len;
    int32_t nrows; /* -1: a label */
    uint32_t hash;
} Entry;

typedef struct {
    int32_t *v;
    size_t len, cap;
} RowList;

typedef struct {
    PyObject_HEAD
    int32_t dim, nwords, nlabels, size, minn, maxn, bucket, word_ngrams;
    int64_t pruneidx_size;
    /* pruned buckets (pruneidx_size > 0): bucket b is kept when bit b is set, as row
     * prune_rows[rank of b] (prune_rows[kept] is -1, for the rank of a bucket past the last) */
    BitBlock *prune_blocks;
    int32_t *prune_rows;
    uint32_t prune_limit; /* buckets from here on are not kept: the bitmap ends at the last kept one */
    /* the tokens: open addressing on the FNV-1a hash */
    Slot *slots;
    uint32_t slot_mask;
    int slot_bits;
    Entry *entries;
    int32_t nentries;
    size_t cap_entries;
    char *keys;
    size_t keys_len, keys_cap, static_keys_len;
    int32_t *rows;
    size_t rows_len, rows_cap, static_rows_len;
    Matrix in, out;
    /* the tree: nodes 0..nlabels-1 are the labels, the root is 2 * nlabels - 2 */
    int32_t *left, *right;
    float log_threshold;
    PyObject *labels; /* tuple of str */
    /* scratch, used under the GIL */
    float *hidden;
    int32_t *stack_node;
    float *stack_score;
    unsigned char *utf8, *word;
    size_t utf8_cap, word_cap;
    int32_t *hashes;
    size_t hashes_cap;
    RowList line;
} ModelObject;

/* a buffer of `size`-byte items with room for `more` after the first `len`: buf itself, or a larger
 * copy; NULL when out of memory (buf is then left as it was) */
static void *
grow(void *buf, size_t *cap, size_t len, size_t more, size_t size)
{
    if (buf && more <= *cap - len)
        return buf;
    size_t want = *cap ? *cap : 64;
    while (want - len < more) {
        if (want > ((size_t)PY_SSIZE_T_MAX / size) / 2)
            return NULL;
        want *= 2;
    }
    void *p = PyMem_Realloc(buf, want * size);
    if (p)
        *cap = want;
    return p;
}

/* grow() of the buffer variable buf (its capacity variable cap): 0, or -1 when out of memory. The
 * caller declares `void *tmp_`. */
#define RESERVE(buf, cap, len, more) \
    ((tmp_ = grow((buf), &(cap), (len), (more), sizeof *(buf))) != NULL ? ((buf) = tmp_, 0) : -1)

static inline int
rows_reserve(RowList *l, size_t more)
{
    void *tmp_;
    return RESERVE(l->v, l->cap, l->len, more);
}

/* the row of bucket b, or -1 where the pruned dictionary drops it (Dictionary::pushHash) */
static inline int32_t
bucket_row(const ModelObject *M, uint32_t b)
{
    if (M->pruneidx_size < 0)
        return M->nwords + (int32_t)b;
    if (b >= M->prune_limit)
        return -1;
    const BitBlock *blk = &M->prune_blocks[b >> 6];
    uint64_t bit = (uint64_t)1 << (b & 63);
    int32_t row = M->prune_rows[blk->base + popcount64(blk->bits & (bit - 1))];
    return (blk->bits & bit) ? row : -1;
}

/* the rows of a batch of buckets, in order: independent loads, no branch on whether one is kept */
static int
push_buckets(const ModelObject *M, RowList *out, const uint32_t *buckets, size_t n)
{
    if (rows_reserve(out, n) < 0)
        return -1;
    int32_t *v = out->v;
    size_t len = out->len;
    for (size_t k = 0; k < n; k++) {
        int32_t row = bucket_row(M, buckets[k]);
        v[len] = row;
        len += row >= 0;
    }
    out->len = len;
    return 0;
}

/* Dictionary::computeSubwords of w (already "<" + token + ">"): appends the rows to out */
static int
compute_subwords(const ModelObject *M, RowList *out, const unsigned char *w, size_t len)
{
    if (M->pruneidx_size == 0)
        return 0; /* pushHash keeps nothing */
    const size_t maxn = (size_t)M->maxn, minn = (size_t)M->minn;
    const uint32_t bucket = (uint32_t)M->bucket;
    uint32_t buckets[BATCH];
    size_t nb = 0;
    for (size_t i = 0; i < len; i++) {
        if ((w[i] & 0xC0) == 0x80)
            continue;
        uint32_t h = 2166136261u;
        size_t j = i;
        for (size_t n = 1; j < len && n <= maxn; n++) {
            h = fnv_feed(h, w[j++]);
            while (j < len && (w[j] & 0xC0) == 0x80)
                h = fnv_feed(h, w[j++]);
            if (n >= minn && !(n == 1 && (i == 0 || j == len))) {
                buckets[nb++] = h % bucket;
                if (nb == BATCH) {
                    if (push_buckets(M, out, buckets, nb) < 0)
                        return -1;
                    nb = 0;
                }
            }
        }
    }
    return push_buckets(M, out, buckets, nb);
}

/* ---- the token table ---------------------------------------------------------------------- */

static inline uint32_t
slot_of(const ModelObject *M, uint32_t h)
{
    return (h * 0x9E3779B1u) >> (32 - M->slot_bits);
}

static inline int32_t
table_find(const ModelObject *M, const unsigned char *s, size_t n, uint32_t h)
{
    uint32_t i = slot_of(M, h);
    for (;;) {
        Slot sl = M->slots[i];
        if (sl.entry < 0)
            return -1;
        if (sl.hash == h) {
            const Entry *e = &M->entries[sl.entry];
            if ((size_t)e->key_len == n && memcmp(M->keys + e->key_off, s, n) == 0)
                return sl.entry;
        }
        i = (i + 1) & M->slot_mask;
    }
}

/* puts entry id in the table; an entry with the same token leaves the table (the dictionary: a
 * later duplicate wins, as in Dictionary::load) */
static void
table_put(ModelObject *M, int32_t id)
{
    const Entry *e = &M->entries[id];
    uint32_t i = slot_of(M, e->hash);
    for (;;) {
        Slot sl = M->slots[i];
        if (sl.entry < 0)
            break;
        if (sl.hash == e->hash) {
            const Entry *o = &M->entries[sl.entry];
            if (o->key_len == e->key_len && memcmp(M->keys + o->key_off, M->keys + e->key_off, (size_t)e->key_len) == 0)
                break;
        }
        i = (i + 1) & M->slot_mask;
    }
    M->slots[i].hash = e->hash;
    M->slots[i].entry = id;
}

static void
table_fill(ModelObject *M)
{
    memset(M->slots, 0xFF, ((size_t)M->slot_mask + 1) * sizeof(Slot));
    for (int32_t id = 0; id < M->nentries; id++)
        table_put(M, id);
}

/* a new table of 2^bits slots for entries 0..nentries-1; -1 when out of memory (the old one stays) */
static int
table_build(ModelObject *M, int bits)
{
    Slot *slots = PyMem_Malloc(((size_t)1 << bits) * sizeof(Slot));
    if (!slots)
        return -1;
    PyMem_Free(M->slots);
    M->slots = slots;
    M->slot_bits = bits;
    M->slot_mask = (uint32_t)(((uint64_t)1 << bits) - 1);
    table_fill(M);
    return 0;
}

/* forgets the remembered words: the table holds the dictionary only */
static void
cache_clear(ModelObject *M)
{
    if (M->nentries == M->size)
        return;
    M->nentries = M->size;
    M->keys_len = M->static_keys_len;
    M->rows_len = M->static_rows_len;
    table_fill(M);
}

/* remembers the rows of a word outside the dictionary; nothing happens when memory is short */
static void
cache_put(ModelObject *M, const unsigned char *tok, size_t tlen, uint32_t h, const int32_t *rows, size_t nrows)
{
    if (M->nentries - M->size >= CACHE_WORDS || M->keys_len - M->static_keys_len + tlen > CACHE_KEY_BYTES ||
        M->rows_len - M->static_rows_len + nrows > CACHE_ROWS)
        cache_clear(M);
    if (((uint64_t)M->nentries + 1) * 2 > ((uint64_t)1 << M->slot_bits)) {
        if (M->slot_bits >= 30 || table_build(M, M->slot_bits + 1) < 0)
            return;
    }
    void *tmp_;
    if (RESERVE(M->entries, M->cap_entries, (size_t)M->nentries, 1) < 0 ||
        RESERVE(M->keys, M->keys_cap, M->keys_len, tlen) < 0 || RESERVE(M->rows, M->rows_cap, M->rows_len, nrows) < 0)
        return;
    Entry *e = &M->entries[M->nentries];
    e->key_off = (int64_t)M->keys_len;
    e->key_len = (int32_t)tlen;
    e->rows_off = (int64_t)M->rows_len;
    e->nrows = (int32_t)nrows;
    e->hash = h;
    memcpy(M->keys + M->keys_len, tok, tlen);
    M->keys_len += tlen;
    if (nrows)
        memcpy(M->rows + M->rows_len, rows, nrows * sizeof(int32_t));
    M->rows_len += nrows;
    table_put(M, M->nentries++);
}

/* ---- prediction --------------------------------------------------------------------------- */

static inline int
is_delim(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

/* 1: a label (*label, *prob); 0: no prediction; -1: out of memory; -2: NaN in a dense dot
 * product (fastText throws EncounteredNaNError) */
static int
predict_one(ModelObject *M, const unsigned char *s, size_t len, int32_t *label, float *prob)
{
    RowList *line = &M->line;
    size_t nhashes = 0, pos = 0;

    /* Dictionary::getLine: the rows of the line, in order */
    line->len = 0;
    void *tmp_;
    if (RESERVE(M->hashes, M->hashes_cap, 0, len / 2 + 2) < 0 || RESERVE(M->word, M->word_cap, 0, len + 2) < 0)
        return -1;
    for (;;) {
        const unsigned char *tok;
        size_t tlen;
        while (pos < len && is_delim(s[pos]))
            pos++;
        if (pos >= len) { /* the "\n" predict appends: the end-of-sentence token */
            tok = (const unsigned char *)EOS;
            tlen = 4;
        }
        else {
            size_t start = pos;
            while (pos < len && !is_delim(s[pos]))
                pos++;
            tok = s + start;
            tlen = pos - start;
        }
        const int is_eos = tlen == 4 && memcmp(tok, EOS, 4) == 0;
        const uint32_t h = fnv(tok, tlen);
        const int32_t id = table_find(M, tok, tlen, h);
        if (id >= 0) {
            const Entry *e = &M->entries[id];
            if (e->nrows > 0) { /* a word (of the dictionary or remembered) with rows */
                if (rows_reserve(line, (size_t)e->nrows) < 0)
                    return -1;
                memcpy(line->v + line->len, M->rows + e->rows_off, (size_t)e->nrows * sizeof(int32_t));
                line->len += (size_t)e->nrows;
            }
            if (e->nrows >= 0)
                M->hashes[nhashes++] = (int32_t)h;
        }
        else if (!(tlen >= 9 && memcmp(tok, LABEL_PREFIX, 9) == 0)) { /* a word outside it */
            if (!is_eos && M->maxn > 0 && M->pruneidx_size != 0) {
                size_t start = line->len;
                M->word[0] = '<';
                memcpy(M->word + 1, tok, tlen);
                M->word[tlen + 1] = '>';
                if (compute_subwords(M, line, M->word, tlen + 2) < 0)
                    return -1;
                if (tlen <= CACHE_TOKEN)
                    cache_put(M, tok, tlen, h, line->v + start, line->len - start);
            }
            M->hashes[nhashes++] = (int32_t)h;
        }
        if (is_eos)
            break;
    }
    /* Dictionary::addWordNgrams (j < i + wordNgrams: nothing when wordNgrams <= 1) */
    for (size_t i = 0; M->word_ngrams > 1 && i < nhashes; i++) {
        uint64_t hh = (uint64_t)(int64_t)M->hashes[i];
        for (size_t j = i + 1; j < nhashes && j < i + (size_t)M->word_ngrams; j++) {
            hh = hh * 116049371u + (uint64_t)(int64_t)M->hashes[j];
            uint32_t b = (uint32_t)(hh % (uint64_t)(int64_t)M->bucket);
            if (M->pruneidx_size != 0 && push_buckets(M, line, &b, 1) < 0)
                return -1;
        }
    }
    if (line->len == 0)
        return 0; /* FastText::predict: no input, no prediction */

    /* Model::computeHidden: averageRowsToVector. (fastText's dense SIMD path for widths
     * 16/32/64/256/512 starts from the first row instead of 0.0f: the same sums but for the sign
     * of a zero, which no dot product sees, d starting at +0.0f and +0 + -0 being +0.) */
    float *hidden = M->hidden;
    memset(hidden, 0, (size_t)M->dim * sizeof(float));
    for (size_t k = 0; k < line->len; k++)
        add_row(&M->in, hidden, line->v[k]);
    const float inv = (float)(1.0 / (double)line->len);
    for (int32_t i = 0; i < M->dim; i++)
        hidden[i] *= inv;

    /* HierarchicalSoftmaxLoss::dfs with k = 1, as an explicit stack (left child first) */
    const int32_t osz = M->nlabels;
    int have = 0, nan = 0;
    float best = 0.0f;
    int32_t best_node = -1;
    size_t top = 0;
    M->stack_node[top] = 2 * osz - 2;
    M->stack_score[top] = 0.0f;
    top++;
    while (top > 0) {
        top--;
        const int32_t node = M->stack_node[top];
        const float score = M->stack_score[top];
        if (score < M->log_threshold)
            continue;
        if (have && score < best)
            continue;
        if (M->left[node] == -1 && M->right[node] == -1) {
            /* push_heap then pop_heap of two: the earlier leaf stays only if strictly better */
            if (!have || !(best > score)) {
                best = score;
                best_node = node;
            }
            have = 1;
            continue;
        }
        float f = dot_row(&M->out, hidden, node - osz);
        if (!M->out.quant && isnan(f))
            nan = 1;
        f = (float)(1. / (double)(1.0f + expf(-f)));
        const float left_score = score + std_log((float)(1.0 - (double)f));
        const float right_score = score + std_log(f);
        M->stack_node[top] = M->right[node];
        M->stack_score[top] = right_score;
        top++;
        M->stack_node[top] = M->left[node];
        M->stack_score[top] = left_score;
        top++;
    }
    if (nan)
        return -2;
    if (!have)
        return 0;
    *label = best_node;
    *prob = expf(best);
    return 1;
}

/* ---- Python: predict ---------------------------------------------------------------------- */

/* the UTF-8 of a str (*out: its own bytes when ASCII, else M->utf8); -1 with an exception set */
static Py_ssize_t
text_utf8(ModelObject *M, PyObject *s, const unsigned char **out)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s)) {
        *out = PyUnicode_DATA(s);
        return n;
    }
    void *tmp_;
    if ((size_t)n > (size_t)PY_SSIZE_T_MAX / 4 - 1 || RESERVE(M->utf8, M->utf8_cap, 0, 4 * (size_t)n + 1) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    const int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    unsigned char *o = M->utf8;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80)
            *o++ = (unsigned char)c;
        else if (c < 0x800) {
            *o++ = (unsigned char)(0xC0 | (c >> 6));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        }
        else if (c < 0x10000) {
            if (c >= 0xD800 && c <= 0xDFFF) {
                PyObject *exc = PyObject_CallFunction(PyExc_UnicodeEncodeError, "sOnns", "utf-8", s, i, i + 1,
                                                      "surrogates not allowed");
                if (exc) {
                    PyErr_SetObject(PyExc_UnicodeEncodeError, exc);
                    Py_DECREF(exc);
                }
                return -1;
            }
            *o++ = (unsigned char)(0xE0 | (c >> 12));
            *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        }
        else {
            *o++ = (unsigned char)(0xF0 | (c >> 18));
            *o++ = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    *out = M->utf8;
    return o - M->utf8;
}

static void
scratch_trim(ModelObject *M)
{
    if (M->utf8_cap > SCRATCH_KEEP) {
        PyMem_Free(M->utf8);
        M->utf8 = NULL;
        M->utf8_cap = 0;
    }
    if (M->word_cap > SCRATCH_KEEP) {
        PyMem_Free(M->word);
        M->word = NULL;
        M->word_cap = 0;
    }
    if (M->hashes_cap * sizeof(int32_t) > SCRATCH_KEEP) {
        PyMem_Free(M->hashes);
        M->hashes = NULL;
        M->hashes_cap = 0;
    }
    if (M->line.cap * sizeof(int32_t) > SCRATCH_KEEP) {
        PyMem_Free(M->line.v);
        M->line.v = NULL;
        M->line.cap = 0;
    }
}

static PyObject *
Model_predict(ModelObject *self, PyObject *arg)
{
    if (!self->labels) {
        PyErr_SetString(PyExc_ValueError, "the model is not loaded");
        return NULL;
    }
    if (!PyList_Check(arg) && !PyTuple_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "predict() expects a list of str, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    /* a tuple of its own: the texts stay alive whatever runs while objects are made (a finalizer
     * that changes the list) */
    PyObject *seq = PySequence_Tuple(arg);
    if (!seq)
        return NULL;
    const Py_ssize_t count = PyTuple_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    /* fastText's predict refuses the whole list when one text has a newline */
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "predict() expects a list of str, found %.100s",
                         Py_TYPE(items[i])->tp_name);
            Py_DECREF(seq);
            return NULL;
        }
        if (PyUnicode_FindChar(items[i], '\n', 0, PY_SSIZE_T_MAX, 1) != -1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "predict processes one line at a time (remove '\\n')");
            Py_DECREF(seq);
            return NULL;
        }
    }
    PyObject *result = PyList_New(count);
    if (!result)
        goto error;
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *text;
        Py_ssize_t n = text_utf8(self, items[i], &text);
        if (n < 0)
            goto error;
        int32_t label = 0;
        float prob = 0.0f;
        int status = predict_one(self, text, (size_t)n, &label, &prob);
        PyObject *item;
        if (status == -1) {
            PyErr_NoMemory();
            goto error;
        }
        if (status == -2) {
            PyErr_SetString(PyExc_RuntimeError, "Encountered NaN.");
            goto error;
        }
        if (status == 0) {
            item = Py_None;
            Py_INCREF(item);
        }
        else {
            PyObject *p = PyFloat_FromDouble((double)prob);
            if (!p)
                goto error;
            item = PyTuple_New(2);
            if (!item) {
                Py_DECREF(p);
                goto error;
            }
            PyObject *lab = PyTuple_GET_ITEM(self->labels, label);
            Py_INCREF(lab);
            PyTuple_SET_ITEM(item, 0, lab);
            PyTuple_SET_ITEM(item, 1, p);
        }
        PyList_SET_ITEM(result, i, item);
    }
    scratch_trim(self);
    Py_DECREF(seq);
    return result;
error:
    scratch_trim(self);
    Py_XDECREF(result);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *
Model_clear_cache(ModelObject *self, PyObject *unused)
{
    (void)unused;
    if (self->labels)
        cache_clear(self);
    Py_RETURN_NONE;
}

/* ---- loading ------------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *p;
    size_t len, pos;
    const char *what; /* what was being read when the file ended */
} Reader;

/* 0, or -1 when fewer than n bytes are left (r->what says where) */
static int
rd(Reader *r, void *out, size_t n, const char *what)
{
    if (n > r->len - r->pos) {
        r->what = what;
        return -1;
    }
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

/* a C++ bool: one byte; -2 when it is neither 0 nor 1 */
static int
rd_bool(Reader *r, int *v, const char *what)
{
    unsigned char b;
    if (rd(r, &b, 1, what) < 0)
        return -1;
    if (b > 1)
        return -2;
    *v = b;
    return 0;
}

#define TRUNCATED ((const char *)1)

/* ProductQuantizer::load, checked: the sizes must be those ProductQuantizer(dim, dsub) makes */
static const char *
load_pq(Reader *r, PQ *pq)
{
    int32_t v[4];
    if (rd(r, v, sizeof v, "a product quantizer") < 0)
        return TRUNCATED;
    pq->dim = v[0];
    pq->nsubq = v[1];
    pq->dsub = v[2];
    pq->lastdsub = v[3];
    if (pq->dim < 1 || pq->dim > MAX_DIM || pq->dsub < 1)
        return "product quantizer sizes out of range";
    int32_t nsubq = pq->dim / pq->dsub, lastdsub = pq->dim % pq->dsub;
    if (lastdsub == 0)
        lastdsub = pq->dsub;
    else
        nsubq++;
    if (pq->nsubq != nsubq || pq->lastdsub != lastdsub)
        return "product quantizer sizes that do not agree";
    size_t bytes = (size_t)pq->dim * KSUB * sizeof(float);
    if (bytes > r->len - r->pos) {
        r->what = "the product quantizer's centroids";
        return TRUNCATED;
    }
    pq->centroids = PyMem_Malloc(bytes);
    if (!pq->centroids)
        return "out of memory";
    rd(r, pq->centroids, bytes, "");
    return NULL;
}

/* QuantMatrix::load / DenseMatrix::load, checked */
static const char *
load_matrix(Reader *r, Matrix *mat, int quant)
{
    const char *err;
    mat->quant = quant;
    if (!quant) {
        if (rd(r, &mat->m, 8, "a matrix's size") < 0 || rd(r, &mat->n, 8, "a matrix's size") < 0)
            return TRUNCATED;
        if (mat->m < 0 || mat->n < 1 || mat->n > MAX_DIM)
            return "matrix sizes out of range";
        if ((uint64_t)mat->m > (r->len - r->pos) / sizeof(float) / (uint64_t)mat->n) {
            r->what = "a matrix";
            return TRUNCATED;
        }
        size_t bytes = (size_t)mat->m * (size_t)mat->n * sizeof(float);
        mat->data = PyMem_Malloc(bytes + 1);
        if (!mat->data)
            return "out of memory";
        rd(r, mat->data, bytes, "");
        return NULL;
    }
    int qnorm = 0, rc;
    int32_t codesize;
    if ((rc = rd_bool(r, &qnorm, "a quantized matrix")) == -2)
        return "a boolean that is neither 0 nor 1";
    if (rc < 0 || rd(r, &mat->m, 8, "a matrix's size") < 0 || rd(r, &mat->n, 8, "a matrix's size") < 0 ||
        rd(r, &codesize, 4, "a matrix's size") < 0)
        return TRUNCATED;
    mat->qnorm = qnorm;
    if (mat->m < 0 || mat->n < 1 || mat->n > MAX_DIM || codesize < 0 || mat->m > codesize)
        return "matrix sizes out of range";
    if ((size_t)codesize > r->len - r->pos) {
        r->what = "a matrix's codes";
        return TRUNCATED;
    }
    mat->codes = PyMem_Malloc((size_t)codesize + 1);
    if (!mat->codes)
        return "out of memory";
    rd(r, mat->codes, (size_t)codesize, "");
    if ((err = load_pq(r, &mat->pq)) != NULL)
        return err;
    if (mat->pq.dim != mat->n)
        return "a product quantizer of another width than its matrix";
    if ((int64_t)codesize != mat->m * mat->pq.nsubq)
        return "a code size that does not match the matrix";
    if (qnorm) {
        if ((uint64_t)mat->m > r->len - r->pos) {
            r->what = "a matrix's norm codes";
            return TRUNCATED;
        }
        mat->norm_codes = PyMem_Malloc((size_t)mat->m + 1);
        if (!mat->norm_codes)
            return "out of memory";
        rd(r, mat->norm_codes, (size_t)mat->m, "");
        if ((err = load_pq(r, &mat->npq)) != NULL)
            return err;
    }
    return NULL;
}

/* the reason the file cannot be loaded (TRUNCATED: r->what), or NULL */
static const char *
model_parse(ModelObject *M, Reader *r, int64_t **counts_out, int32_t **pairs_out)
{
    int32_t magic, version, args[12], loss, model;
    int64_t ntokens;
    double t;
    const char *err;
    int quant_input = 0, qout = 0, rc;

    if (rd(r, &magic, 4, "the header") < 0)
        return TRUNCATED;
    if (magic != FT_MAGIC)
        return "no fastText magic number";
    if (rd(r, &version, 4, "the header") < 0)
        return TRUNCATED;
    if (version > FT_VERSION)
        return "a fastText format version newer than 12";
    if (rd(r, args, sizeof args, "the arguments") < 0 || rd(r, &t, sizeof t, "the arguments") < 0)
        return TRUNCATED;
    M->dim = args[0];
    M->word_ngrams = args[5];
    loss = args[6];
    model = args[7];
    M->bucket = args[8];
    M->minn = args[9];
    M->maxn = args[10];
    if (model != MODEL_SUP)
        return "not a supervised model";
    if (loss != LOSS_HS)
        return "not a hierarchical-softmax model (loss hs)";
    if (version == 11)
        M->maxn = 0; /* FastText::loadModel: old supervised models have no character n-grams */
    if (M->dim < 1 || M->dim > MAX_DIM)
        return "a dimension out of range";
    if (M->minn < 0 || M->maxn < 0 || M->maxn > MAX_CHAR_NGRAM || M->word_ngrams > MAX_WORD_NGRAMS)
        return "n-gram sizes out of range";
    if (M->bucket < 0)
        return "a negative bucket count";
    if (M->bucket <= 0 && (M->maxn > 0 || M->word_ngrams > 1))
        return "n-grams without buckets";

    /* Dictionary::load */
    if (rd(r, &M->size, 4, "the dictionary") < 0 || rd(r, &M->nwords, 4, "the dictionary") < 0 ||
        rd(r, &M->nlabels, 4, "the dictionary") < 0 || rd(r, &ntokens, 8, "the dictionary") < 0 ||
        rd(r, &M->pruneidx_size, 8, "the dictionary") < 0)
        return TRUNCATED;
    if (M->size < 0 || M->nwords < 0 || M->nlabels < 1 || (int64_t)M->nwords + M->nlabels != M->size)
        return "dictionary sizes that do not agree";
    if ((size_t)M->size > (r->len - r->pos) / 10) { /* an entry is at least 10 bytes */
        r->what = "the dictionary";
        return TRUNCATED;
    }
    M->cap_entries = (size_t)M->size + 1;
    M->entries = PyMem_Malloc(M->cap_entries * sizeof(Entry));
    int64_t *counts = *counts_out = PyMem_Malloc(((size_t)M->size + 1) * sizeof(int64_t));
    if (!M->entries || !counts)
        return "out of memory";
    const size_t words_start = r->pos;
    for (int32_t i = 0; i < M->size; i++) {
        const unsigned char *nul = memchr(r->p + r->pos, 0, r->len - r->pos);
        if (!nul) {
            r->what = "the dictionary";
            return TRUNCATED;
        }
        size_t n = (size_t)(nul - (r->p + r->pos));
        if (n > INT32_MAX)
            return "a word too long";
        M->entries[i].key_off = (int64_t)(r->pos - words_start);
        M->entries[i].key_len = (int32_t)n;
        M->entries[i].hash = fnv(r->p + r->pos, n);
        r->pos += n + 1;
        int8_t type;
        if (rd(r, &counts[i], 8, "the dictionary") < 0 || rd(r, &type, 1, "the dictionary") < 0)
            return TRUNCATED;
        if (type != (i < M->nwords ? TYPE_WORD : TYPE_LABEL))
            return "dictionary entries that are not words then labels";
    }
    /* the words as in the file, NUL-separated (key_off counts from the first) */
    M->keys_len = M->static_keys_len = r->pos - words_start;
    M->keys_cap = M->keys_len + 1;
    M->keys = PyMem_Malloc(M->keys_cap);
    if (!M->keys)
        return "out of memory";
    memcpy(M->keys, r->p + words_start, M->keys_len);
    M->nentries = M->size;
    if (M->pruneidx_size < -1)
        return "a negative pruned-index size";
    if (M->pruneidx_size > 0) {
        if ((uint64_t)M->pruneidx_size > (r->len - r->pos) / 8) {
            r->what = "the pruned index";
            return TRUNCATED;
        }
        *pairs_out = PyMem_Malloc((size_t)M->pruneidx_size * 8);
        if (!*pairs_out)
            return "out of memory";
        rd(r, *pairs_out, (size_t)M->pruneidx_size * 8, "");
    }

    /* FastText::loadModel: the input matrix, then the output matrix */
    if ((rc = rd_bool(r, &quant_input, "the input matrix")) == -2)
        return "a boolean that is neither 0 nor 1";
    if (rc < 0)
        return TRUNCATED;
    if ((err = load_matrix(r, &M->in, quant_input)) != NULL)
        return err;
    if (!quant_input && M->pruneidx_size >= 0)
        return "a pruned dictionary with a dense matrix (an outdated model file)";
    if ((rc = rd_bool(r, &qout, "the output matrix")) == -2)
        return "a boolean that is neither 0 nor 1";
    if (rc < 0)
        return TRUNCATED;
    if ((err = load_matrix(r, &M->out, quant_input && qout)) != NULL)
        return err;
    if (M->in.n != M->dim || M->out.n != M->dim)
        return "matrices not as wide as the dimension";
    if (M->out.m < (int64_t)M->nlabels - 1)
        return "fewer output rows than tree nodes";
    if (M->in.m < M->nwords)
        return "fewer input rows than words";
    if (M->pruneidx_size < 0 && (M->maxn > 0 || M->word_ngrams > 1) &&
        (M->in.m < (int64_t)M->nwords + M->bucket || (int64_t)M->nwords + M->bucket > INT32_MAX))
        return "fewer input rows than words and buckets";
    return NULL;
}

/* the bitmap of kept buckets; pairs in file order, so that a later pair wins (std::unordered_map's
 * operator[]) */
static const char *
build_pruned(ModelObject *M, const int32_t *pairs)
{
    if (M->pruneidx_size <= 0)
        return NULL;
    /* sized by the largest kept bucket, not by `bucket` (a small file could claim 2^31 buckets) */
    int64_t limit = 0;
    for (int64_t k = 0; k < M->pruneidx_size; k++) {
        int32_t key = pairs[2 * k];
        if (key >= 0 && key < M->bucket && (int64_t)key + 1 > limit)
            limit = (int64_t)key + 1;
    }
    M->prune_limit = (uint32_t)limit;
    size_t nblocks = ((size_t)limit + 63) / 64;
    M->prune_blocks = PyMem_Calloc(nblocks + 1, sizeof(BitBlock));
    if (!M->prune_blocks)
        return "out of memory";
    for (int64_t k = 0; k < M->pruneidx_size; k++) {
        int32_t key = pairs[2 * k];
        if (key >= 0 && key < M->bucket) /* pushHash never asks for any other */
            M->prune_blocks[key >> 6].bits |= (uint64_t)1 << (key & 63);
    }
    uint32_t kept = 0;
    for (size_t b = 0; b < nblocks; b++) {
        M->prune_blocks[b].base = kept;
        kept += popcount64(M->prune_blocks[b].bits);
    }
    M->prune_rows = PyMem_Malloc(((size_t)kept + 1) * sizeof(int32_t));
    if (!M->prune_rows)
        return "out of memory";
    M->prune_rows[kept] = -1;
    for (int64_t k = 0; k < M->pruneidx_size; k++) {
        int32_t key = pairs[2 * k], val = pairs[2 * k + 1];
        if (key >= 0 && key < M->bucket) {
            const BitBlock *blk = &M->prune_blocks[key >> 6];
            uint64_t bit = (uint64_t)1 << (key & 63);
            /* an invalid value makes the row invalid: checked below, after the last pair */
            M->prune_rows[blk->base + popcount64(blk->bits & (bit - 1))] =
                (val < 0 || (int64_t)M->nwords + val >= M->in.m) ? INT32_MIN : M->nwords + val;
        }
    }
    for (uint32_t k = 0; k < kept; k++)
        if (M->prune_rows[k] == INT32_MIN)
            return "a pruned bucket outside the input matrix";
    return NULL;
}

/* HierarchicalSoftmaxLoss::buildTree over the label counts, in dictionary order */
static const char *
build_tree(ModelObject *M, const int64_t *label_counts)
{
    const int32_t osz = M->nlabels;
    const size_t nodes = 2 * (size_t)osz - 1;
    /* one more count than nodes: fastText's loop may compare count[node] with node == nodes (when
     * counts reach 1e15) before the check below rejects the file; the extra one reads as 1e15 */
    int64_t *count = PyMem_Malloc((nodes + 1) * sizeof(int64_t));
    M->left = PyMem_Malloc(nodes * sizeof(int32_t));
    M->right = PyMem_Malloc(nodes * sizeof(int32_t));
    if (!count || !M->left || !M->right) {
        PyMem_Free(count);
        return "out of memory";
    }
    for (size_t i = 0; i < nodes; i++)
        M->left[i] = M->right[i] = -1;
    for (size_t i = 0; i <= nodes; i++)
        count[i] = (int64_t)1e15;
    for (int32_t i = 0; i < osz; i++)
        count[i] = label_counts[i];
    int32_t leaf = osz - 1, node = osz;
    for (int32_t i = osz; i < 2 * osz - 1; i++) {
        int32_t mini[2] = {0, 0};
        for (int j = 0; j < 2; j++) {
            if (leaf >= 0 && count[leaf] < count[node])
                mini[j] = leaf--;
            else
                mini[j] = node++;
        }
        /* a child is a node made before: counts of 1e15 or more would make a cycle */
        if (mini[0] >= i || mini[1] >= i) {
            PyMem_Free(count);
            return "label counts that make no tree";
        }
        M->left[i] = mini[0];
        M->right[i] = mini[1];
        count[i] = (int64_t)((uint64_t)count[mini[0]] + (uint64_t)count[mini[1]]);
    }
    PyMem_Free(count);
    return NULL;
}

/* Dictionary::initNgrams, for the words: their rows (id, then character n-grams); a label none */
static const char *
build_rows(ModelObject *M)
{
    RowList list = {NULL, 0, 0};
    unsigned char *word = NULL;
    size_t word_cap = 0;
    for (int32_t i = 0; i < M->size; i++) {
        Entry *e = &M->entries[i];
        e->rows_off = (int64_t)list.len;
        if (i >= M->nwords) {
            e->nrows = -1;
            continue;
        }
        if (rows_reserve(&list, 1) < 0)
            goto oom;
        list.v[list.len++] = i;
        const char *w = M->keys + e->key_off;
        size_t n = (size_t)e->key_len;
        if (!(n == 4 && memcmp(w, EOS, 4) == 0)) {
            void *tmp_;
            if (RESERVE(word, word_cap, 0, n + 2) < 0)
                goto oom;
            word[0] = '<';
            memcpy(word + 1, w, n);
            word[n + 1] = '>';
            if (compute_subwords(M, &list, word, n + 2) < 0)
                goto oom;
        }
        if (list.len - (size_t)e->rows_off > INT32_MAX)
            goto oom;
        e->nrows = (int32_t)(list.len - (size_t)e->rows_off);
    }
    PyMem_Free(word);
    M->rows = list.v ? list.v : PyMem_Malloc(sizeof(int32_t));
    M->rows_len = M->static_rows_len = list.len;
    M->rows_cap = list.v ? list.cap : 1;
    return M->rows ? NULL : "out of memory";
oom:
    PyMem_Free(word);
    PyMem_Free(list.v);
    return "out of memory";
}

static int
model_load(ModelObject *M, const unsigned char *data, size_t len, PyObject *path)
{
    Reader r = {data, len, 0, NULL};
    int64_t *counts = NULL;
    int32_t *pairs = NULL;
    const char *err = model_parse(M, &r, &counts, &pairs);
    if (!err)
        err = build_pruned(M, pairs);
    if (!err)
        err = build_tree(M, counts + M->nwords);
    if (!err)
        err = build_rows(M);
    if (!err) {
        int bits = 4;
        while (((uint64_t)1 << bits) < 2 * (uint64_t)M->size + 2)
            bits++;
        if (bits > 30 || table_build(M, bits) < 0)
            err = "out of memory";
    }
    if (!err) {
        M->hidden = PyMem_Malloc((size_t)M->dim * sizeof(float));
        M->stack_node = PyMem_Malloc(2 * (size_t)M->nlabels * sizeof(int32_t));
        M->stack_score = PyMem_Malloc(2 * (size_t)M->nlabels * sizeof(float));
        if (!M->hidden || !M->stack_node || !M->stack_score)
            err = "out of memory";
    }
    M->log_threshold = std_log(0.0f);
    if (!err) {
        M->labels = PyTuple_New(M->nlabels);
        if (!M->labels) {
            PyMem_Free(counts);
            PyMem_Free(pairs);
            return -1;
        }
        for (int32_t i = 0; i < M->nlabels; i++) {
            const Entry *e = &M->entries[M->nwords + i];
            PyObject *s = PyUnicode_DecodeUTF8(M->keys + e->key_off, e->key_len, "strict");
            if (!s) {
                PyErr_Clear();
                err = "a label that is not UTF-8";
                break;
            }
            PyTuple_SET_ITEM(M->labels, i, s);
        }
    }
    PyMem_Free(counts);
    PyMem_Free(pairs);
    if (!err)
        return 0;
    if (err == TRUNCATED)
        PyErr_Format(PyExc_ValueError, "%R is not a supported fastText model: the file ends inside %s", path,
                     r.what ? r.what : "the model");
    else if (strcmp(err, "out of memory") == 0)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_ValueError, "%R is not a supported fastText model: %s", path, err);
    return -1;
}

static void
model_clear(ModelObject *M)
{
    PyMem_Free(M->prune_blocks);
    PyMem_Free(M->prune_rows);
    PyMem_Free(M->slots);
    PyMem_Free(M->entries);
    PyMem_Free(M->keys);
    PyMem_Free(M->rows);
    PyMem_Free(M->left);
    PyMem_Free(M->right);
    PyMem_Free(M->hidden);
    PyMem_Free(M->stack_node);
    PyMem_Free(M->stack_score);
    PyMem_Free(M->utf8);
    PyMem_Free(M->word);
    PyMem_Free(M->hashes);
    PyMem_Free(M->line.v);
    matrix_free(&M->in);
    matrix_free(&M->out);
    Py_CLEAR(M->labels);
    /* everything after the object header back to zero */
    memset((char *)M + sizeof(PyObject), 0, sizeof(ModelObject) - sizeof(PyObject));
}

static int
Model_init(ModelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", NULL};
    PyObject *path = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&:Model", kwlist, PyUnicode_FSConverter, &path))
        return -1;
    if (self->labels) {
        PyErr_SetString(PyExc_TypeError, "Model is already loaded");
        Py_DECREF(path);
        return -1;
    }
    model_clear(self);
    unsigned char *data = NULL;
    size_t len = 0, cap = 0;
    int failed = 0, saved_errno = 0;
    FILE *f;
    Py_BEGIN_ALLOW_THREADS
    f = fopen(PyBytes_AS_STRING(path), "rb");
    if (!f)
        saved_errno = errno;
    else {
        for (;;) {
            if (len == cap) {
                size_t want = cap ? cap * 2 : (size_t)1 << 20;
                if (want > MAX_FILE_BYTES) { /* not a language-id model (or /dev/zero) */
                    failed = 3;
                    break;
                }
                unsigned char *more = want > cap ? realloc(data, want) : NULL;
                if (!more) {
                    failed = 2;
                    break;
                }
                data = more;
                cap = want;
            }
            size_t got = fread(data + len, 1, cap - len, f);
            len += got;
            if (got == 0) {
                if (ferror(f)) {
                    saved_errno = errno;
                    failed = 1;
                }
                break;
            }
        }
        fclose(f);
    }
    Py_END_ALLOW_THREADS
    if (!f || failed == 1) {
        errno = saved_errno;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    }
    else if (failed == 2)
        PyErr_NoMemory();
    else if (failed == 3)
        PyErr_Format(PyExc_ValueError, "%s: larger than %d MB, not a fastText language-id model",
                     PyBytes_AS_STRING(path), (int)(MAX_FILE_BYTES >> 20));
    int rc = -1;
    if (f && !failed && self->labels) { /* another thread loaded it meanwhile */
        PyErr_SetString(PyExc_TypeError, "Model is already loaded");
        free(data);
        Py_DECREF(path);
        return -1;
    }
    if (f && !failed)
        rc = model_load(self, data, len, path);
    free(data);
    Py_DECREF(path);
    if (rc < 0)
        model_clear(self);
    return rc;
}

static void
Model_dealloc(ModelObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    model_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type); /* an instance of a heap type holds a reference to it */
}

static PyObject *
Model_get_labels(ModelObject *self, void *closure)
{
    (void)closure;
    if (!self->labels) {
        PyErr_SetString(PyExc_ValueError, "the model is not loaded");
        return NULL;
    }
    Py_INCREF(self->labels);
    return self->labels;
}

static PyObject *
Model_get_quantized(ModelObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->in.quant);
}

static PyObject *
Model_get_cached_words(ModelObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong(self->labels ? (long)(self->nentries - self->size) : 0L);
}

static PyMethodDef Model_methods[] = {
    {"predict", (PyCFunction)Model_predict, METH_O,
     "predict(texts: list[str]) -> list[tuple[str, float] | None]\n\n"
     "fastText's predict(texts, k=1), text by text: (label with its __label__ prefix, the float32\n"
     "probability fastText computes), or None where fastText gives no label."},
    {"clear_cache", (PyCFunction)Model_clear_cache, METH_NOARGS,
     "Forget the remembered rows of words outside the dictionary (no answer changes)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Model_getset[] = {
    {"labels", (getter)Model_get_labels, NULL, "the labels, in the dictionary's order", NULL},
    {"quantized", (getter)Model_get_quantized, NULL, "whether the input matrix is quantized", NULL},
    {"cached_words", (getter)Model_get_cached_words, NULL, "how many words the word cache holds", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Model_members[] = {
    {"dim", FL_T_INT, offsetof(ModelObject, dim), FL_READONLY, "the dimension"},
    {"nwords", FL_T_INT, offsetof(ModelObject, nwords), FL_READONLY, "the number of words in the dictionary"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Model_slots[] = {
    {Py_tp_dealloc, Model_dealloc},
    {Py_tp_doc, "Model(path): a fastText supervised model with hierarchical softmax (.ftz or .bin)."},
    {Py_tp_methods, Model_methods},
    {Py_tp_members, Model_members},
    {Py_tp_getset, Model_getset},
    {Py_tp_init, Model_init},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec Model_spec = {
    .name = "spamcli._fastlid.Model",
    .basicsize = sizeof(ModelObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Model_slots,
};

/* Py_mod_exec: each module object gets its own Model type (a heap type); the module keeps no other
 * state, and a Model keeps everything it uses. */
static int
fastlid_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &Model_spec, NULL);
    if (!type)
        return -1;
    int failed = PyModule_AddObjectRef(module, "Model", type);
    Py_DECREF(type);
    return failed;
}

static PyModuleDef_Slot fastlid_slots[] = {
    {Py_mod_exec, fastlid_exec},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "spamcli._fastlid",
    .m_doc = "fastText's top-1 prediction (supervised, hierarchical softmax), bit-identical, without fastText.",
    .m_size = 0,
    .m_slots = fastlid_slots,
};

PyMODINIT_FUNC
PyInit__fastlid(void)
{
    return PyModuleDef_Init(&moduledef);
}
