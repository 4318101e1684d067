/*
 * embed: turns the Lua sources under lua/ into a C file that lists each
 * module's name, its source text and its precompiled bytecode, so the
 * binary needs no files at run time and parses no Lua at start-up.
 *
 * usage: embed OUTPUT.c LUA_ROOT FILE.lua...
 * A file LUA_ROOT/cutover/actions/copy.lua becomes module
 * "cutover.actions.copy"; an init.lua names its folder.
 *
 * The bytecode keeps its debug information (tracebacks and error
 * messages name the same files and lines as the source would), under the
 * chunk name "@DIR/PATH", DIR being LUA_ROOT's last folder: the name the
 * source is loaded under (host.c).  A file that does not compile fails
 * the build here, with Lua's message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

/* Bytes in memory, grown as needed (owned by whoever holds the struct). */
struct bytes {
    unsigned char *data;
    size_t len;
    size_t cap;
};

static int bytes_add(struct bytes *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        unsigned char *grown;
        while (cap < b->len + len)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (grown == NULL)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static int module_name(const char *root, const char *path, char *out,
                       size_t cap)
{
    size_t root_len = strlen(root);
    const char *rel;
    size_t len;
    size_t i;

    if (strncmp(path, root, root_len) != 0 || path[root_len] != '/')
        return -1;
    rel = path + root_len + 1;
    len = strlen(rel);
    if (len < 5 || strcmp(rel + len - 4, ".lua") != 0 || len >= cap)
        return -1;
    len -= 4;
    memcpy(out, rel, len);
    out[len] = '\0';
    for (i = 0; i < len; i++) {
        if (out[i] == '/')
            out[i] = '.';
    }
    if (len > 5 && strcmp(out + len - 5, ".init") == 0)
        out[len - 5] = '\0';
    return 0;
}

static int read_file(const char *path, struct bytes *b)
{
    FILE *in = fopen(path, "rb");
    char buf[8192];
    size_t n;
    int status = 0;

    if (in == NULL) {
        perror(path);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (bytes_add(b, buf, n) != 0) {
            fprintf(stderr, "embed: %s: out of memory\n", path);
            status = -1;
            break;
        }
    if (ferror(in)) {
        perror(path);
        status = -1;
    }
    fclose(in);
    return status;
}

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud)
{
    (void)L;
    return bytes_add(ud, p, size);
}

/* Compiles source under chunkname into bytecode (debug info kept). */
static int compile(lua_State *L, const struct bytes *source,
                   const char *chunkname, struct bytes *code)
{
    int status = -1;

    if (luaL_loadbufferx(L, (const char *)source->data, source->len,
                         chunkname, "t") != LUA_OK) {
        fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
        goto done;
    }
    if (lua_dump(L, dump_writer, code, 0) != 0) {
        fprintf(stderr, "embed: %s: cannot dump the bytecode\n", chunkname);
        goto done;
    }
    status = 0;
done:
    lua_settop(L, 0);
    return status;
}

static void emit_array(FILE *out, const char *kind, int index,
                       const struct bytes *b)
{
    size_t i;

    fprintf(out, "static const unsigned char %s_%d[] = {", kind, index);
    for (i = 0; i < b->len; i++) {
        if (i % 16 == 0)
            fputs("\n   ", out);
        fprintf(out, " %d,", b->data[i]);
    }
    fputs(" 0\n};\n", out);
}

/* Writes module `index`'s source and bytecode arrays. */
static int emit_module(FILE *out, lua_State *L, const char *root,
                       const char *path, int index)
{
    const char *dir = strrchr(root, '/');
    struct bytes source = {0};
    struct bytes code = {0};
    char chunkname[1024];
    int status = -1;

    dir = dir != NULL ? dir + 1 : root;
    snprintf(chunkname, sizeof chunkname, "@%s/%s", dir,
             path + strlen(root) + 1);
    if (read_file(path, &source) != 0 ||
        compile(L, &source, chunkname, &code) != 0)
        goto done;
    emit_array(out, "source", index, &source);
    emit_array(out, "bytecode", index, &code);
    status = 0;
done:
    free(source.data);
    free(code.data);
    return status;
}

int main(int argc, char **argv)
{
    FILE *out;
    lua_State *L = NULL;
    char name[512];
    int i;
    int status = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: embed OUTPUT.c LUA_ROOT FILE.lua...\n");
        return 2;
    }
    out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "embed: cannot create a Lua state\n");
        goto done;
    }
    fputs("/* Generated by core/tools/embed.c; do not edit. */\n"
          "#include \"embedded.h\"\n", out);
    for (i = 3; i < argc; i++) {
        if (module_name(argv[2], argv[i], name, sizeof name) != 0) {
            fprintf(stderr, "embed: %s is not a .lua file under %s\n",
                    argv[i], argv[2]);
            goto done;
        }
        if (emit_module(out, L, argv[2], argv[i], i) != 0)
            goto done;
    }
    fputs("const struct embedded_module cutover_embedded[] = {\n", out);
    for (i = 3; i < argc; i++) {
        module_name(argv[2], argv[i], name, sizeof name);
        fprintf(out, "    {\"%s\", \"%s\", (const char *)source_%d, "
                "sizeof source_%d - 1, (const char *)bytecode_%d, "
                "sizeof bytecode_%d - 1},\n",
                name, argv[i] + strlen(argv[2]) + 1, i, i, i, i);
    }
    fputs("    {0, 0, 0, 0, 0, 0}\n};\n", out);
    status = 0;
done:
    if (L != NULL)
        lua_close(L);
    if (fclose(out) != 0)
        status = 1;
    if (status != 0)
        remove(argv[1]);
    return status;
}
