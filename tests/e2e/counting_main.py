# counting_main.py: main.py for the sleep tests (tools.simdevice --main): the firmware as main.py
# runs it, but every run of an RPC handler prints "test: rpc ran <method>", so a test can count
# how often an RPC really ran, whatever ThingsBoard re-sent and whatever the board replied. As
# in main.py, whatever fails (its imports too) goes to crash.handle.
try:
    from firmware import app

    _rpc = app.App.rpc

    def counted(self, method, params):
        print("test: rpc ran", method)
        return _rpc(self, method, params)

    app.App.rpc = counted
    app.run()
except Exception as e:
    from firmware import crash

    crash.handle(e)
