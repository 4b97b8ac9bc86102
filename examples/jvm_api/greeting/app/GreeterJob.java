package greeting.app;

import com.typesafe.config.Config;
import greeting.lib.Greeting;
import org.apache.spark.sql.SparkSession;
import spark.jobserver.api.JobEnvironment;
import spark.jobserver.japi.JSessionJob;

/** A job whose jar leaves out the library it calls: the context has it from an earlier job. */
public class GreeterJob extends JSessionJob<String> {
    @Override
    public String run(SparkSession spark, JobEnvironment runtime, Config data) {
        return Greeting.greet(data.getString("input.who"));
    }

    @Override
    public Config verify(SparkSession spark, JobEnvironment runtime, Config config) {
        return config;
    }
}
