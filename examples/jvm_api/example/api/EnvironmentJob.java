package example.api;

import com.typesafe.config.Config;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import spark.jobserver.api.JobEnvironment;
import spark.jobserver.japi.JSessionJob;

/** What a job learns from its JobEnvironment and its Typesafe Config. */
public class EnvironmentJob extends JSessionJob<Map<String, Object>> {
    @Override
    public Map<String, Object> run(SparkSession spark, JobEnvironment runtime, Config data) {
        Map<String, Object> seen = new LinkedHashMap<>();
        seen.put("jobId", runtime.jobId());
        seen.put("context", runtime.contextConfig().getString("context.name"));
        seen.put("rows", data.getInt("input.rows"));
        seen.put("label", data.getConfig("input").getString("label"));
        seen.put("labelSet", data.hasPath("input.label"));
        seen.put("rowsTwice", spark.range(data.getInt("input.rows")).count() * 2);
        return seen;
    }

    @Override
    public Config verify(SparkSession spark, JobEnvironment runtime, Config config) {
        return config.withFallback(com.typesafe.config.ConfigFactory.parseString("input.label = none"));
    }
}
