/*
 * fs.c: the local file system, for the local connection and for reading
 * playbooks, templates and `src` files on the controller.
 *
 * Failures of the world return nil, "PATH: reason", errno (as liolib).
 * Writes are atomic: a temporary file in the same folder, fsync, rename,
 * so a reader never sees half a file and a crash leaves the old one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sodium.h>

#include "cutover.h"

#define FS_FD_MT "cutover.fs.fd"
#define FS_DEFAULT_MAX_READ (64 * 1024 * 1024)

static int fs_fail(lua_State *L, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

/* A file descriptor owned by a userdata; closed by __gc / __close. */
static int *fs_newfd(lua_State *L)
{
    int *fd = lua_newuserdatauv(L, sizeof *fd, 0);

    *fd = -1;
    luaL_setmetatable(L, FS_FD_MT);
    return fd;
}

static int fs_fd_gc(lua_State *L)
{
    int *fd = luaL_checkudata(L, 1, FS_FD_MT);

    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    return 0;
}

/*
 * fs.read(path [, max_bytes]) -> content | nil, message, errno
 * A file larger than max_bytes (default 64 MiB) is an error.
 */
static int fs_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, FS_DEFAULT_MAX_READ);
    int *fd = fs_newfd(L);
    luaL_Buffer b;
    struct stat st;
    size_t total = 0;

    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return fs_fail(L, path, errno);
    if (fstat(*fd, &st) != 0)
        return fs_fail(L, path, errno);
    if (S_ISDIR(st.st_mode))
        return fs_fail(L, path, EISDIR);
    if (S_ISREG(st.st_mode) && st.st_size > max) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: file is larger than the limit of %d bytes",
                        path, (int)max);
        lua_pushinteger(L, EFBIG);
        return 3;
    }
    luaL_buffinit(L, &b);
    for (;;) {
        char *chunk = luaL_prepbuffer(&b);
        ssize_t n = read(*fd, chunk, LUAL_BUFFERSIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fs_fail(L, path, errno);
        if (n == 0)
            break;
        total += (size_t)n;
        if (total > (size_t)max) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s: file is larger than the limit of %d "
                            "bytes", path, (int)max);
            lua_pushinteger(L, EFBIG);
            return 3;
        }
        luaL_addsize(&b, (size_t)n);
    }
    luaL_pushresult(&b);
    return 1;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * fs.write(path, content [, mode]) -> true | nil, message, errno
 * Atomic replace.  mode: permission bits; default keeps an existing
 * file's mode, or 0644 for a new file.  An existing file's owner and
 * group are kept when the process may set them.
 */
static int fs_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *content = luaL_checklstring(L, 2, &len);
    int has_mode = !lua_isnoneornil(L, 3);
    mode_t mode = (mode_t)luaL_optinteger(L, 3, 0644) & 07777;
    int *fd;
    struct stat st;
    char tmp[PATH_MAX];
    unsigned char rnd[6];
    int exists;
    int err;

    exists = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    if (!has_mode && exists)
        mode = st.st_mode & 07777;
    randombytes_buf(rnd, sizeof rnd);
    if (snprintf(tmp, sizeof tmp, "%s.cutover-%02x%02x%02x%02x%02x%02x",
                 path, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5])
        >= (int)sizeof tmp)
        return fs_fail(L, path, ENAMETOOLONG);
    fd = fs_newfd(L);
    *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return fs_fail(L, path, errno);
    if (write_all(*fd, content, len) != 0)
        goto undo;
    /* The replacement keeps the owner of the file it replaces (best
     * effort, as only root may give a file away); then the mode. */
    if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()) &&
        fchown(*fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
        goto undo;
    if (fchmod(*fd, mode) != 0 || fsync(*fd) != 0)
        goto undo;
    close(*fd);
    *fd = -1;
    if (rename(tmp, path) != 0)
        goto undo;
    lua_pushboolean(L, 1);
    return 1;
undo:
    err = errno;
    unlink(tmp);
    return fs_fail(L, path, err);
}

static const char *type_name(mode_t m)
{
    if (S_ISREG(m))
        return "file";
    if (S_ISDIR(m))
        return "directory";
    if (S_ISLNK(m))
        return "link";
    return "other";
}

/*
 * fs.stat(path [, follow]) -> {type=, mode=, size=, mtime=, uid=, gid=}
 *                            | nil, message, errno
 * Does not follow a final symlink unless follow is true.
 */
static int fs_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int follow = lua_toboolean(L, 2);
    struct stat st;

    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0)
        return fs_fail(L, path, errno);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, type_name(st.st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, st.st_mode & 07777);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec +
                      (lua_Number)st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, st.st_gid);
    lua_setfield(L, -2, "gid");
    return 1;
}

/* fs.mkdir(path [, mode]) -> true | nil, message, errno  (one level) */
static int fs_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);

    if (mkdir(path, mode) != 0)
        return fs_fail(L, path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.remove(path) -> true | nil, message, errno  (file or empty dir) */
static int fs_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;

    if (lstat(path, &st) != 0)
        return fs_fail(L, path, errno);
    if ((S_ISDIR(st.st_mode) ? rmdir(path) : unlink(path)) != 0)
        return fs_fail(L, path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.chmod(path, mode) -> true | nil, message, errno */
static int fs_chmod(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mode_t mode = (mode_t)luaL_checkinteger(L, 2) & 07777;

    if (chmod(path, mode) != 0)
        return fs_fail(L, path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.touch(path) -> true | nil, message, errno  (create or set mtime) */
static int fs_touch(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0)
        return fs_fail(L, path, errno);
    if (futimens(fd, NULL) != 0) {
        int err = errno;
        close(fd);
        return fs_fail(L, path, err);
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.list(path) -> {names...} sorted | nil, message, errno */
static int fs_list(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR **dir = lua_newuserdatauv(L, sizeof *dir, 0);
    struct dirent *ent;
    lua_Integer n = 0;

    /* The DIR is closed before any call that may raise leaves this
     * function, except lua_pushstring (memory); accept that rare leak
     * rather than copy names twice. */
    *dir = opendir(path);
    if (*dir == NULL)
        return fs_fail(L, path, errno);
    lua_newtable(L);
    while ((ent = readdir(*dir)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        lua_pushstring(L, ent->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(*dir);
    *dir = NULL;
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

/* fs.realpath(path) -> absolute path | nil, message, errno */
static int fs_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[PATH_MAX];

    if (realpath(path, buf) == NULL)
        return fs_fail(L, path, errno);
    lua_pushstring(L, buf);
    return 1;
}

/* fs.sha256(path) -> hex digest | nil, message, errno  (streams) */
static int fs_sha256(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int *fd = fs_newfd(L);
    crypto_hash_sha256_state state;
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    unsigned char chunk[65536];
    ssize_t n;

    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return fs_fail(L, path, errno);
    crypto_hash_sha256_init(&state);
    while ((n = read(*fd, chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fs_fail(L, path, errno);
        crypto_hash_sha256_update(&state, chunk, (size_t)n);
    }
    crypto_hash_sha256_final(&state, digest);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg fs_funcs[] = {
    {"read", fs_read},
    {"write", fs_write},
    {"stat", fs_stat},
    {"mkdir", fs_mkdir},
    {"remove", fs_remove},
    {"chmod", fs_chmod},
    {"touch", fs_touch},
    {"list", fs_list},
    {"realpath", fs_realpath},
    {"sha256", fs_sha256},
    {NULL, NULL}
};

int luaopen_cutover_fs(lua_State *L)
{
    luaL_newmetatable(L, FS_FD_MT);
    lua_pushcfunction(L, fs_fd_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, fs_fd_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, fs_funcs);
    return 1;
}
