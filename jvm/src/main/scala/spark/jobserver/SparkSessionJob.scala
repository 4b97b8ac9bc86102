package spark.jobserver

import org.apache.spark.sql.SparkSession

/** A Scala job that gets the context's SparkSession (a context of a session factory). */
trait SparkSessionJob extends spark.jobserver.api.SparkJobBase {
  type C = SparkSession
}
