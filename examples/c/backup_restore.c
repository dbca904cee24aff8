/*
 * Backs up a PostgreSQL server and restores it to a point in time through libpgbak, the C ABI of
 * pgbak.
 *
 *   backup_restore backup  CONFIG SERVER
 *   backup_restore recover CONFIG SERVER DESTINATION TARGET_TIME
 *   backup_restore missing CONFIG SERVER
 *
 * Build: gcc -o backup_restore backup_restore.c -I crates/pgbak-ffi/include -L target/release -lpgbak
 */
#include <pgbak.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s failed with status %d: %s\n", what, rc, pgbak_last_error());
    return rc;
}

struct progress
{
    unsigned long calls;
    uint64_t last;
};

static void on_progress(void *user, uint64_t done, int64_t total)
{
    struct progress *p = user;
    (void) total;
    p->calls++;
    p->last = done;
}

int main(int argc, char **argv)
{
    pgbak_server *server = NULL;
    char *report = NULL;
    int rc;

    if (argc < 4)
    {
        fprintf(stderr, "usage: %s backup|recover|missing CONFIG SERVER [DESTINATION TARGET_TIME]\n", argv[0]);
        return 2;
    }
    printf("libpgbak %s\n", pgbak_version());
    rc = pgbak_open(argv[2], argv[3], &server);
    if (rc != PGBAK_OK)
        return fail("pgbak_open", rc);

    if (strcmp(argv[1], "backup") == 0)
    {
        struct progress p = {0, 0};

        pgbak_set_progress(server, on_progress, &p);
        rc = pgbak_backup(server, "{\"wait\": true, \"wait_timeout\": 120}", &report);
        if (rc != PGBAK_OK)
            return fail("pgbak_backup", rc);
        printf("backup: %s\n", report);
        printf("progress: %lu calls, %llu bytes\n", p.calls, (unsigned long long) p.last);
        pgbak_string_free(report);
    }
    else if (strcmp(argv[1], "recover") == 0 && argc == 6)
    {
        char options[512];

        snprintf(options, sizeof(options),
                 "{\"target_time\": \"%s\", \"target_action\": \"promote\"}", argv[5]);
        rc = pgbak_recover(server, "latest", argv[4], options, &report);
        if (rc != PGBAK_OK)
            return fail("pgbak_recover", rc);
        printf("recover: %s\n", report);
        pgbak_string_free(report);
    }
    else if (strcmp(argv[1], "missing") == 0)
    {
        /* Failures are status codes with a message: a backup that does not exist, bad options. */
        rc = pgbak_show_backup(server, "20000101T000000", &report);
        printf("show_backup: status %d (not found is %d): %s\n", rc, PGBAK_NOT_FOUND, pgbak_last_error());
        rc = pgbak_backup(server, "{\"wiat\": true}", &report);
        printf("backup: status %d (usage is %d): %s\n", rc, PGBAK_USAGE, pgbak_last_error());
    }
    else
    {
        fprintf(stderr, "unknown command %s\n", argv[1]);
        pgbak_close(server);
        return 2;
    }
    pgbak_close(server);
    return 0;
}
