#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% driver_rss -- exhook-driver's resident memory with a big policy and a big
%% store (DESIGN §6: <= 64 MiB with 100k rules and 1M users).  Opens the
%% driver as the broker does, logs in LOGINS users and makes ACL checks for
%% them, then reads the driver's VmRSS (now) and VmHWM (peak) from /proc.
%%
%% usage: driver_rss.escript DRIVER DB POLICY USERS LOGINS PASSWORD

-mode(compile).

main([Drv, Db, Policy, Users, Logins, Pw]) ->
    NUsers = list_to_integer(Users),
    Port = open_port({spawn, Drv ++ " --db " ++ Db ++ " --policy " ++ Policy ++
                          " --log-level warn"},
                     [{packet, 4}, binary, exit_status]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    {r, 0, _} = call(Port, 0, init, []),
    rand:seed(exsss, {1, 2, 3}),
    lists:foreach(
      fun(I) ->
              N = rand:uniform(NUsers) - 1,
              User = iolist_to_binary(io_lib:format("dev~6..0B", [N rem 1000000])),
              Cid = <<User/binary, "-1">>,
              CI = [{node, 'n@h'}, {clientid, Cid}, {username, User},
                    {password, list_to_binary(Pw)}, {peerhost, <<"10.0.0.1">>},
                    {sockport, 1883}, {protocol, mqtt}, {mountpoint, <<>>},
                    {is_superuser, false}, {anonymous, false}],
              {r, _, {0, true}} = call(Port, 2 * I + 1, on_client_authenticate,
                                        [CI, true, exhook]),
              {r, _, _} = call(Port, 2 * I + 2, on_client_check_acl,
                               [CI, publish, <<"devices/", User/binary, "/up/t">>, true,
                                exhook])
      end, lists:seq(1, list_to_integer(Logins))),
    Status = os:cmd("grep -E 'VmRSS|VmHWM' /proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [Hwm, Rss] = [list_to_integer(lists:nth(2, string:lexemes(L, " \t")))
                  || L <- string:lexemes(Status, "\n")],
    io:format("driver rss_mib=~.1f peak_mib=~.1f after ~s logins (users=~s, policy=~s)~n",
              [Rss / 1024, Hwm / 1024, Logins, Users, Policy]),
    port_close(Port).

call(Port, Id, F, A) ->
    port_command(Port, term_to_binary({'C', Id, exhook, F, A})),
    receive {Port, {data, D}} -> binary_to_term(D) after 30000 -> exit(timeout) end.
