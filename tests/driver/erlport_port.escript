#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% erlport_port -- opens python3 as a port exactly as EMQX 4.1/4.2's
%% extension hook makes erlport do it, then plays the plugin's first calls.
%% Run by tests/erlport_launch_test.sh, stderr to a file it reads.
%%
%% usage: erlport_port.escript MODE PRIV PATH STDIO PACKET [DRIVER]
%%   MODE    serve: init, authenticate, check_acl, deinit, close (needs
%%           DRIVER, the real path of the binary the port must turn into);
%%           refuse: the port must exit without answering init
%%   PRIV    the erlport priv/python3 directory (a fake one)
%%   PATH    the plugin's exhook.drivers.python3.path
%%   STDIO   use_stdio | nouse_stdio
%%   PACKET  1 | 2 | 4 (the plugin always leaves erlport's default, 4)
%% Prints "ok - ..." and "FAIL - ..." lines; exit 1 on any failure.
%%
%% What erlport does, as read in github.com/emqx/erlport (v1.1.1 for EMQX
%% 4.1, v1.2.2 for 4.2; emqx-extension-hook's rebar.config pins them):
%%   src/python_options.erl   os:find_executable("python3"), absolute; its
%%                            `-V` must read ^Python X.Y.Z, X >= 3 (v1.2.2);
%%                            PYTHONPATH = priv/python3, python_path (the
%%                            plugin's `path`), then the VM's own PYTHONPATH,
%%                            duplicates and empty entries dropped; port
%%                            options [{env, Env}, {packet, P} | Opts] with
%%                            Opts = [binary, hide, exit_status], nouse_stdio
%%                            in front when asked
%%   src/erlport_options.erl  the version check: open_port({spawn, Cmd},
%%                            [{line, 80}, stderr_to_stdout, hide]), first
%%                            line only
%%   src/python.erl           open_port({spawn, Python ++ " -u -m erlport.cli
%%                            --packet=P --use_stdio|--nouse_stdio
%%                            --compressed=0 --buffer_size=65536"}, Opts)
%% and the plugin (github.com/emqx/emqx-extension-hook,
%% src/emqx_extension_hook_driver.erl): python:start_link([{python,
%% "python3"} | Opts]), pool of one, first call init on init_module (main),
%% callbacks on the module the hook spec names, deinit on unload.

-mode(compile).

main([Mode, Priv, Path, Stdio, Packet | Rest]) ->
    put(fail, 0),
    UseStdio = list_to_atom(Stdio),
    P = list_to_integer(Packet),
    Python = case os:find_executable("python3") of
                 false -> bad("python3 on PATH", "not found"), halt(1);
                 F -> filename:absname(F)
             end,
    check_version(Python),
    PyPath = dedup([Priv, Path | string:lexemes(os:getenv("PYTHONPATH", ""), ":")], []),
    Env = [{"PYTHONPATH", lists:flatten(lists:join(":", PyPath))}],
    Opts0 = [binary, hide, exit_status],
    Opts = [{env, Env}, {packet, P} | case UseStdio of
                                          nouse_stdio -> [nouse_stdio | Opts0];
                                          use_stdio -> Opts0
                                      end],
    Cmd = lists:concat([Python, " -u", " -m erlport.cli", " --packet=", P, " --", UseStdio,
                        " --compressed=", 0, " --buffer_size=", 65536]),
    Port = open_port({spawn, Cmd}, Opts),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    case {Mode, Rest} of
        {"serve", [Driver]} -> serve(Port, OsPid, Driver);
        {"refuse", []} -> refuse(Port)
    end,
    halt(case get(fail) of 0 -> 0; _ -> 1 end).

ok(Name) -> io:format("ok - ~ts~n", [Name]).
bad(Name, Why) ->
    put(fail, get(fail) + 1),
    io:format("FAIL - ~ts: ~ts~n", [Name, Why]).
check(Name, Got, Want) when is_function(Want, 1) ->
    case catch Want(Got) of
        true -> ok(Name);
        _ -> bad(Name, io_lib:format("got ~0tp", [Got]))
    end;
check(Name, Got, Want) ->
    case Got =:= Want of
        true -> ok(Name);
        false -> bad(Name, io_lib:format("got ~0tp, want ~0tp", [Got, Want]))
    end.

dedup([], Acc) -> lists:reverse(Acc);
dedup([P | T], Acc) ->
    case lists:member(P, Acc) of true -> dedup(T, Acc); false -> dedup(T, [P | Acc]) end.

check_version(Python) ->
    V = open_port({spawn, Python ++ " -V"}, [{line, 80}, stderr_to_stdout, hide]),
    Out = receive {V, {data, {eol, L}}} -> L; {V, _} -> "ERROR" after 15000 -> "TIMEOUT" end,
    catch port_close(V),
    check("erlport's version check: `" ++ Python ++ " -V` reads " ++ Out, Out,
          fun(O) -> {match, [Maj]} = re:run(O, "^Python ([0-9]+)\\.[0-9]+\\.[0-9]+",
                                            [{capture, all_but_first, list}]),
                    list_to_integer(Maj) >= 3 end).

%% One call as erlport sends it; its reply, or why there is none.
call(Port, Id, M, F, A) ->
    catch port_command(Port, term_to_binary({'C', Id, M, F, A})), % it may be gone
    receive
        {Port, {data, B}} ->
            case binary_to_term(B) of
                {'r', Id, R} -> {r, R};
                Other -> {other, Other}
            end;
        {Port, {exit_status, S}} -> {exited, S}
    after 10000 -> no_answer
    end.

ci(User, Pw) ->
    [{node, 'emqx@127.0.0.1'}, {clientid, <<"web-1">>}, {username, User}, {password, Pw},
     {peerhost, <<"127.0.0.1">>}, {sockport, 1883}, {protocol, mqtt}, {mountpoint, <<>>},
     {is_superuser, false}, {anonymous, false}].

serve(Port, OsPid, Driver) ->
    %% the plugin's first call: {'C', Id, main, init, []}
    case call(Port, 1, main, init, []) of
        {r, {0, {Spec, State}}} when is_list(Spec) ->
            ok("init on init_module main -> {0, {HookSpec, State}}"),
            Hooks = [H || {H, _, _, _} <- Spec],
            check("hook spec: client_authenticate, client_check_acl, client_connected, "
                  "client_disconnected", lists:sort(Hooks),
                  lists:sort(["client_authenticate", "client_check_acl", "client_connected",
                              "client_disconnected"])),
            check(io_lib:format("the port's own process (os_pid ~b) is exhook-driver now",
                                [OsPid]),
                  file:read_link_all("/proc/" ++ integer_to_list(OsPid) ++ "/exe"),
                  {ok, Driver}),
            %% callbacks go to the module and function the hook spec names
            Cb = fun(Hook) ->
                         [{M, Fn}] = [{list_to_atom(M), list_to_atom(Fn)}
                                      || {H, M, Fn, _} <- Spec, H =:= Hook],
                         {M, Fn}
                 end,
            {AM, AF} = Cb("client_authenticate"),
            {CM, CF} = Cb("client_check_acl"),
            Alice = ci(<<"acme:alice">>, <<"alice-pw">>),
            check("authenticate acme:alice, right password -> {0, true}",
                  call(Port, 2, AM, AF, [Alice, false, State]), {r, {0, true}}),
            check("authenticate acme:alice, wrong password -> {0, false}",
                  call(Port, 3, AM, AF, [ci(<<"acme:alice">>, <<"nope">>), false, State]),
                  {r, {0, false}}),
            check("check_acl publish tenants/acme/users/alice/todo -> {0, true}",
                  call(Port, 4, CM, CF, [Alice, publish, <<"tenants/acme/users/alice/todo">>,
                                         true, State]), {r, {0, true}}),
            check("check_acl publish weather/today -> {0, false}",
                  call(Port, 5, CM, CF, [Alice, publish, <<"weather/today">>, true, State]),
                  {r, {0, false}}),
            check("deinit on main (the plugin's unload) -> {'r', Id, _}",
                  call(Port, 6, main, deinit, []), fun({r, _}) -> true end),
            port_close(Port),
            Gone = wait_gone(OsPid, 100),
            check("port closed: the driver exits", Gone, true);
        Other ->
            bad("init on init_module main -> {0, {HookSpec, State}}",
                io_lib:format("~0tp", [Other])),
            catch port_close(Port)
    end.

wait_gone(_, 0) -> false;
wait_gone(OsPid, N) ->
    case file:read_file_info("/proc/" ++ integer_to_list(OsPid)) of
        {error, enoent} -> true;
        _ -> timer:sleep(50), wait_gone(OsPid, N - 1)
    end.

refuse(Port) ->
    R = call(Port, 1, main, init, []),
    check("the port exits with a non-zero status and answers nothing", R,
          fun({exited, S}) -> S =/= 0 end),
    io:format("# exit status: ~0tp~n", [R]).
