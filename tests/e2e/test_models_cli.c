/*
 * test_models_cli.c — models through the binaries: a model written by
 * `shardlm mkmodel` in every weight type loads and generates with `shardlm
 * run`; the Qwen files generate with `run` and through `serve` the same
 * text; one-line errors with exit 1 for a missing file, an unsupported
 * type, an unknown architecture and a prompt longer than the context.
 */
#include "harness.h"

#include "shardlm.h"
#include "model/gguf.h"
#include "model/gguf_write.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST(mkmodel_models_generate) {
    const char *types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char path[] = "/tmp/shardlm-mk-XXXXXX";
        CHECK(sl_test_temp_file(path, NULL));
        char *mk[] = {(char *)sl_test_bin(), "mkmodel", "-o", path, "--dim", "128", "--layers", "2", "--heads", "4",
                      "--kv-heads", "2", "--ffn", "256", "--ctx", "256", "--type", (char *)types[i], "--vocab", "512",
                      "--seed", "7", NULL};
        char *out = NULL, *err = NULL;
        int rc = sl_test_run(mk, &out, &err, 60);
        if (rc != 0) fprintf(stderr, "    mkmodel %s: %s\n", types[i], err);
        free(out);
        free(err);
        char *run[] = {(char *)sl_test_bin(), "run", "-m", path, "-p", "Once upon a time", "-n", "12", "--temp", "0",
                       "--json", "--ignore-eos", "-t", "2", NULL};
        int rc2 = sl_test_run(run, &out, &err, 60);
        json_error_t je;
        json_t *o = rc2 == 0 ? json_loads(out, 0, &je) : NULL;
        size_t n_gen = json_array_size(json_object_get(o, "generated_ids"));
        json_decref(o);
        if (rc2 != 0) fprintf(stderr, "    run %s: %s\n", types[i], err);
        free(out);
        free(err);
        /* the logits are not flat: the top logit stands out from the mean */
        char *lg[] = {(char *)sl_test_bin(), "logits", "-m", path, "-p", "Once upon a time", "-t", "1", NULL};
        int rc3 = sl_test_run(lg, &out, &err, 60);
        double sum = 0, sum2 = 0, mx = -1e30;
        int n = 0;
        for (char *s = out; s && *s;) {
            char *e;
            double v = strtod(s, &e);
            if (e == s) break;
            sum += v;
            sum2 += v * v;
            if (v > mx) mx = v;
            n++;
            s = e;
        }
        free(out);
        free(err);
        unlink(path);
        double mean = n ? sum / n : 0, sd = n ? sqrt(sum2 / n - mean * mean) : 0;
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(rc2, 0);
        CHECK_EQ_INT(n_gen, 12);
        CHECK_EQ_INT(rc3, 0);
        CHECK_EQ_INT(n, 512);
        CHECK_MSG(sd > 0.5 && mx - mean > 2 * sd, "%s: logits look flat (sd %.3g, max-mean %.3g)", types[i], sd,
                  mx - mean);
    }
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    char **b = ud;
    size_t old = *b ? strlen(*b) : 0, n = sz * nm;
    char *nb = realloc(*b, old + n + 1);
    if (!nb) return 0;
    memcpy(nb + old, p, n);
    nb[old + n] = '\0';
    *b = nb;
    return n;
}

/* Qwen2 and Qwen3 files: `run` and `serve` give the same greedy text. */
TEST(qwen_run_and_serve_agree) {
    const char *files[] = {"models/small/small-qwen2-Q8_0.gguf", "models/small/small-qwen3-Q8_0.gguf"};
    for (int k = 0; k < 2; k++) {
        const char *p = sl_test_shared(files[k]);
        CHECK(p);
        char model[256];
        snprintf(model, sizeof model, "%s", p);
        char *run[] = {(char *)sl_test_bin(), "run", "-m", model, "-p", "Once upon a time", "-n", "12", "--temp", "0",
                       "--json", "--ignore-eos", "-t", "2", NULL};
        char *out = NULL, *err = NULL;
        int rc = sl_test_run(run, &out, &err, 60);
        json_error_t je;
        json_t *o = rc == 0 ? json_loads(out, 0, &je) : NULL;
        char *want = o ? strdup(json_string_value(json_object_get(o, "text"))) : NULL;
        json_decref(o);
        free(out);
        free(err);
        CHECK_MSG(want, "shardlm run failed on %s", model);
        sl_test_proc srv;
        char *args[] = {"serve", "-m", model, "--port", "0", "-t", "2", "--kv-mem", "64", "--kv-type", "f32", NULL};
        if (sl_test_proc_start(&srv, args, 30) != 0) {
            free(want);
            CHECK_MSG(0, "serve did not start on %s", model);
        }
        char url[128];
        snprintf(url, sizeof url, "%s/v1/completions", srv.url);
        CURL *c = curl_easy_init();
        char *body = NULL;
        const char *req = "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"ignore_eos\":true}";
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        CURLcode cc = curl_easy_perform(c);
        curl_easy_cleanup(c);
        int src = sl_test_proc_stop(&srv, SIGTERM, 10);
        o = cc == CURLE_OK && body ? json_loads(body, 0, &je) : NULL;
        const char *got = json_string_value(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "text"));
        int same = got && !strcmp(got, want);
        if (!same) fprintf(stderr, "    %s\n    run:   [%s]\n    serve: [%s]\n", model, want, body ? body : "");
        json_decref(o);
        free(body);
        free(want);
        CHECK(same);
        CHECK_EQ_INT(src, 0);
    }
}

/* Copy a GGUF file, giving tensors of type `from` the type `to` (same block geometry). */
static sl_status relabel(const char *src, const char *dst, sl_type from, sl_type to) {
    sl_gguf *g = NULL;
    sl_gguf_writer *w = NULL;
    sl_status st = src ? sl_gguf_open(src, &g) : SL_ERR_IO;
    if (!st) st = sl_gguf_writer_create(dst, &w);
    for (int64_t i = 0; !st && i < sl_gguf_n_kv(g); i++) st = sl_gguf_writer_copy_kv(w, sl_gguf_kv_at(g, i));
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        st = sl_gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type == from ? to : t->type);
    }
    if (!st) st = sl_gguf_writer_begin_data(w);
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++)
        st = sl_gguf_writer_write(w, sl_gguf_tensor_at(g, i)->data, sl_gguf_tensor_at(g, i)->nbytes);
    if (!st) st = sl_gguf_writer_finish(w);
    sl_gguf_writer_destroy(w);
    sl_gguf_close(g);
    return st;
}

static void check_cli_error(char *const argv[], const char *needle) {
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 60);
    bool one_line = err && count_lines(err) == 1 && !strncmp(err, "shardlm ", 8);
    bool names = err && strstr(err, needle);
    if (!(rc == 1 && one_line && names)) fprintf(stderr, "    exit %d, stderr: [%s] (want %s)\n", rc, err ? err : "", needle);
    free(out);
    free(err);
    CHECK_EQ_INT(rc, 1);
    CHECK(one_line);
    CHECK(names);
}

TEST(cli_errors_are_one_line) {
    char *missing[] = {(char *)sl_test_bin(), "run", "-m", "/nonexistent/model.gguf", "-p", "x", NULL};
    check_cli_error(missing, "/nonexistent/model.gguf");
    /* the F16 file relabelled I16 (same geometry), a type the engine does not run as weights */
    char iq[] = "/tmp/shardlm-i16-XXXXXX";
    CHECK(sl_test_temp_file(iq, NULL));
    sl_status st = relabel(sl_test_shared("models/small/small-llama-F16.gguf"), iq, SL_TYPE_F16, SL_TYPE_I16);
    if (st) unlink(iq);
    CHECK_OK(st);
    char *unsupported[] = {(char *)sl_test_bin(), "run", "-m", iq, "-p", "x", NULL};
    check_cli_error(unsupported, "I16");
    unlink(iq);
    char vocab[256];
    snprintf(vocab, sizeof vocab, "%s", sl_test_shared("golden/tokenizer/ggml-vocab-bert-bge.gguf"));
    char *arch[] = {(char *)sl_test_bin(), "run", "-m", vocab, "-p", "x", NULL};
    check_cli_error(arch, "architecture");
    /* a prompt of more than 512 tokens for stories260K (context 512) */
    char *longp = malloc(8000);
    longp[0] = '\0';
    for (int i = 0; i < 600; i++) strcat(longp, "dog ");
    char *toolong[] = {(char *)sl_test_bin(), "run", "-m", "../shared/models/stories260K.gguf", "-p", longp, NULL};
    check_cli_error(toolong, "context");
    free(longp);
    char *badflag[] = {(char *)sl_test_bin(), "run", "--temp", "hot", NULL};
    check_cli_error(badflag, "--temp");
}

/* /v1/chat/completions renders with the template given: the prompt it counts
 * is the Hugging Face render of the golden file, tokenized with special
 * tokens; a template that raises (Gemma 2 has no system role) → 400 on
 * "messages", and the server keeps serving. */
TEST(serve_chat_uses_template) {
    const char *tdir = "../shared/golden/chat-templates";
    char tpl[256], gemma[256], expected[256];
    snprintf(tpl, sizeof tpl, "%s/Qwen-Qwen2.5-7B-Instruct.jinja", tdir);
    snprintf(gemma, sizeof gemma, "%s/google-gemma-2-2b-it.jinja", tdir);
    snprintf(expected, sizeof expected, "%s/expected/Qwen-Qwen2.5-7B-Instruct.b_system_user.txt", tdir);
    char *tok[] = {(char *)sl_test_bin(), "tokenize", "-m", "../shared/models/stories260K.gguf", "-f", expected,
                   "--parse-special", NULL};
    char *out = NULL, *err = NULL;
    CHECK_EQ_INT(sl_test_run(tok, &out, &err, 30), 0);
    int want = 0;
    for (char *p = out; *p; p++) want += (*p != ' ' && *p != '\n') && (p == out || p[-1] == ' ');
    free(out);
    free(err);
    const char *body = "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
                       "{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"max_tokens\":2}";
    const char *tpls[2] = {tpl, gemma};
    long status[2] = {0, 0};
    long long prompt_tokens = -1;
    char *bodies[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        sl_test_proc srv;
        char *args[] = {"serve", "-m", "../shared/models/stories260K.gguf", "--port", "0", "-t", "1", "--chat-template",
                        (char *)tpls[k], NULL};
        CHECK(sl_test_proc_start(&srv, args, 20) == 0);
        char url[128];
        snprintf(url, sizeof url, "%s/v1/chat/completions", srv.url);
        for (int rep = 0; rep < 2; rep++) { /* the second request shows the server still serves */
            CURL *c = curl_easy_init();
            char *rb = NULL;
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &rb);
            curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
            curl_easy_perform(c);
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status[k]);
            curl_easy_cleanup(c);
            if (rep == 0) bodies[k] = rb;
            else free(rb);
        }
        sl_test_proc_stop(&srv, SIGTERM, 10);
    }
    json_error_t je;
    json_t *o = bodies[0] ? json_loads(bodies[0], 0, &je) : NULL;
    prompt_tokens = json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens"));
    json_decref(o);
    bool gemma_named = bodies[1] && strstr(bodies[1], "\"param\":\"messages\"") && strstr(bodies[1], "ystem");
    if (!gemma_named) fprintf(stderr, "    gemma: %s\n", bodies[1] ? bodies[1] : "");
    free(bodies[0]);
    free(bodies[1]);
    CHECK_EQ_INT(status[0], 200);
    CHECK_EQ_INT(prompt_tokens, want);
    CHECK_EQ_INT(status[1], 400);
    CHECK(gemma_named);
}

/* A --chat-template that does not compile is refused at startup, with the
 * flag and the place of the error named. */
TEST(serve_bad_chat_template_refused) {
    char path[] = "/tmp/shardlm-tpl-XXXXXX";
    CHECK(sl_test_temp_file(path, "{% for m in messages %}{{ m.content }}\n{% if %}"));
    char *argv[] = {(char *)sl_test_bin(), "serve", "-m", "../shared/models/stories260K.gguf", "--port", "0",
                    "--chat-template", path, NULL};
    check_cli_error(argv, "--chat-template");
    char *out = NULL, *err = NULL;
    sl_test_run(argv, &out, &err, 60);
    CHECK_MSG(err && strstr(err, "line 2"), "the error does not name the line: %s", err ? err : "");
    free(out);
    free(err);
    unlink(path);
}

/* `shardlm run --chat`: one reply per line of input, then exit 0 at EOF. */
TEST(run_chat_reads_lines) {
    char in[] = "/tmp/shardlm-chat-XXXXXX";
    CHECK(sl_test_temp_file(in, "Hello there\nTell me a story\n"));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s run -m ../shared/models/stories260K.gguf --chat -n 12 --temp 0 -t 1 < %s",
             sl_test_bin(), in);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 60);
    unlink(in);
    int lines_out = out ? count_lines(out) : 0;
    if (rc != 0 || lines_out < 2) fprintf(stderr, "    rc %d, stdout [%s], stderr [%s]\n", rc, out, err);
    free(out);
    free(err);
    CHECK_EQ_INT(rc, 0);
    CHECK(lines_out >= 2);
}
